"""What a newcomer reads first: `mailer --version` and the help pages (issue 15)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mailer.cli import app, load_every_command

MAILER = str(Path(sys.executable).with_name("mailer"))
WIDTH = "80"  # a plain terminal
TYPE_TAG = re.compile(r"<(bool|str|int|float|path|text|integer)[^>]*>", re.IGNORECASE)


def root():
    load_every_command()  # mailer loads a command's module when it runs: here, all of them
    return typer.main.get_command(app)


def is_group(command) -> bool:
    return hasattr(command, "commands")


def every_command_path(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if is_group(command):
            paths += every_command_path(command, (*prefix, name))
    return paths


COMMANDS = every_command_path(root())


def help_of(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": WIDTH})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_version_names_the_installed_release():
    result = subprocess.run([MAILER, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == f"mailer {version('mailer')}\n"


def test_the_command_list_gives_each_command_one_short_line():
    text = help_of()
    panel = text.split("Commands")[1].split("╰")[0]
    rows = [line.strip("│ ").rstrip() for line in panel.splitlines()[1:] if line.strip("│ ")]
    names = [row.split()[0] for row in rows]
    assert sorted(names) == sorted(root().commands)  # no continuation lines: one row each
    assert names[:2] == ["init", "render"]  # in the order a newcomer meets them


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "mailer")
def test_help_has_no_type_tags_and_ends_with_real_examples(path):
    text = help_of(*path)
    assert not TYPE_TAG.search(text), TYPE_TAG.search(text).group(0)

    examples = text.rstrip().split("Examples:")[-1].strip().splitlines()
    assert "Examples:" in text and 2 <= len(examples) <= 3, text
    for line in examples:
        check_example_runs_as_written(line.strip())


def check_example_runs_as_written(line: str) -> None:
    """Every example parses with this mailer: its command exists and its options are real."""
    if re.match(r"^[A-Z_]+=\S+$", line):  # QUEUE=https://… sets a variable for the next lines
        return
    words = shlex.split(line.replace('"$QUEUE"', "https://sqs.example/1/q"), comments=True)
    words = words[:next((i for i, w in enumerate(words) if w in {">", "<", "|"}), len(words))]
    words = [w for w in words if not re.match(r"^[A-Z_]+=", w)]  # VAR=value mailer …
    assert words[0] == "mailer", line
    command, args, name = root(), words[1:], "mailer"
    while is_group(command) and args and not args[0].startswith("-"):
        name = args.pop(0)
        command = command.commands[name]
    if is_group(command):
        assert args in ([], ["--help"]), line
        return
    context = command.make_context(name, list(args))  # raises on an unknown option or value
    context.close()


def test_shell_completion_completes_commands_and_options():
    def complete(words: str, index: int) -> str:
        env = {"COMP_WORDS": words, "COMP_CWORD": str(index), "_MAILER_COMPLETE": "complete_bash"}
        return subprocess.run([MAILER], env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                              text=True, timeout=60).stdout.split()

    assert complete("mailer sub", 1) == ["subscribers"]
    assert complete("mailer send --dr", 2) == ["--dry-run"]


def value_options(command) -> list:
    return [param for param in command.params if param.param_type_name == "option"
            and getattr(param.type_descriptor, "annotation", None) is not bool]


def command_at(path: tuple[str, ...]):
    command = root()
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", [p for p in COMMANDS if not is_group(command_at(p))],
                         ids=" ".join)
def test_every_option_that_takes_a_value_shows_what_it_takes(path):
    """`--issue N`, `--to ADDRESS`: the help says a value follows, and what kind."""
    text = help_of(*path)
    for option in value_options(command_at(path)):
        [line] = [row for row in text.splitlines()
                  if re.search(rf"│\s*\*?\s*{re.escape(option.opts[0])}\b(?![-\w])", row)]
        after = line.split(option.opts[0], 1)[1]
        assert re.match(r"^(\s+-\w)?\s+([A-Z][A-Z_]*|[a-z-]+(\|[a-z-]+)+)\b", after), (path, line)
