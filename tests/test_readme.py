"""The README says only what the program does: every `mailer …` it shows names a real command
and only options that command has, and every setting it lists is one mailer reads, in the one
configuration table (a row outside it renders as raw text)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from mailer.cli import app, load_every_command
from mailer.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _root():  # typer's own click (typer._click in recent typer), so no click types
    load_every_command()  # mailer loads a command's module when it runs: here, all of them
    return typer.main.get_command(app)


def _mentions(text: str) -> list[str]:
    """Every `mailer …` the README shows: code block lines and inline code."""
    found = []
    for block in FENCE.findall(text):
        found += [line.strip() for line in block.splitlines()
                  if line.strip().startswith("mailer ")]
    prose = FENCE.sub("", text)
    found += [span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith("mailer ")]
    # `mailer events replay FILE | events poll …`: alternatives of one synopsis line.
    commands = _root().commands
    mentions = []
    for mention in found:
        mention = mention.split("  #")[0].strip()  # a comment after the synopsis
        first, *alternatives = mention.split(" | ")
        for part in alternatives:
            if part.split()[0] in commands:
                mentions.append(f"mailer {part.strip()}")
            else:
                first = f"{first} | {part}"
        mentions.append(first)
    return mentions


def _resolve(words: list[str]) -> tuple[object, list[str]]:
    """The command the words name (group by group), and the names that led there."""
    command = _root()
    path = []
    for word in words:
        if word not in getattr(command, "commands", {}):
            break
        command = command.commands[word]
        path.append(word)
    return command, path


def _options_of(command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names |= {*param.opts, *param.secondary_opts}
    return names


MENTIONS = _mentions(README.read_text())


def test_the_readme_shows_the_main_commands() -> None:
    shown = {" ".join(_resolve(mention.split()[1:])[1]) for mention in MENTIONS}
    for expected in ("init", "render", "send", "serve", "stats", "doctor", "worker", "check",
                     "subscribers import-mailchimp", "db backup", "events replay", "events poll"):
        assert expected in shown, expected


@pytest.mark.parametrize("mention", MENTIONS)
def test_each_mailer_command_in_the_readme_exists_with_its_options(mention: str) -> None:
    words = mention.split()[1:]
    command, path = _resolve(words)
    following = words[len(path):]
    if hasattr(command, "commands") and following and following[0][0].isalpha():
        pytest.fail(f"`{mention}`: `mailer {' '.join(path)}` has no command {following[0]!r}")
    unknown = sorted(set(OPTION.findall(" ".join(following))) - _options_of(command))
    assert not unknown, f"`{mention}`: `mailer {' '.join(path)}` has no option {unknown}"


def _configuration_section(text: str) -> str:
    start = text.index("## Configuration")
    return text[start:text.index("\n## ", start + 1)]


def test_every_setting_row_sits_in_the_configuration_table() -> None:
    text = README.read_text()
    section = _configuration_section(text)
    table = re.search(r"^\| variable \|.*?(?=\n(?!\|))", section, re.DOTALL | re.MULTILINE)
    assert table, "no configuration table"
    rows = [line for line in text.splitlines() if line.startswith("| `MAILER_")]
    outside = [row for row in rows if row not in table.group(0).splitlines()]
    assert not outside, f"setting rows outside the configuration table: {outside}"


def test_every_setting_the_readme_names_is_one_mailer_reads() -> None:
    known = {field.alias or f"MAILER_{name.upper()}" for name, field in Settings.model_fields.items()}
    text = README.read_text()
    named = set(re.findall(r"\bMAILER_[A-Z0-9_]*[A-Z0-9]\b(?!_\*)", text))
    for prefix in re.findall(r"\b(MAILER_[A-Z0-9_]+)_\*", text):  # `MAILER_BREAKER_*`
        assert any(name.startswith(f"{prefix}_") for name in known), prefix
    named.discard("MAILER_TEST_DATABASE_URL")  # the tests' own, read by conftest.py
    assert named - known == set()
