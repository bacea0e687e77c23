"""docs/operations.md promises that every mailer command in it works: each one is parsed by the
real command line here (`--help` after its arguments proves the command and its options exist),
and the units and JSON documents it names are the ones in deploy/ and valid JSON."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operations.md"
SHELL_OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<"}


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.DOTALL | re.MULTILINE)


def mailer_invocations() -> list[list[str]]:
    """Argument lists of every `mailer …` in the shell blocks and in the running text."""
    found = []
    for block in code_blocks("sh"):
        for line in block.splitlines():
            if '"$@"' in line:  # the wrapper function's definition
                continue
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):
                at_command = i == 0 or words[i - 1] in SHELL_OPERATORS
                if at_command and (word == "mailer" or word.endswith("/bin/mailer")):
                    args = []
                    for arg in words[i + 1:]:
                        if arg in SHELL_OPERATORS:
                            break
                        args.append(arg)
                    found.append(args)
    for span in re.findall(r"`(mailer [^`]+)`", DOC.read_text()):
        found.append(shlex.split(span)[1:])
    return found


INVOCATIONS = mailer_invocations()


def test_the_runbook_has_the_commands_it_promises():
    commands = {" ".join(args[:2]) for args in INVOCATIONS}
    for expected in ("render --issue", "send --issue", "doctor", "db backup", "db upgrade",
                     "stats", "serve", "templates copy", "events poll"):
        assert any(command.startswith(expected) for command in commands), expected


@pytest.mark.parametrize("args", INVOCATIONS, ids=[" ".join(a) for a in INVOCATIONS])
def test_every_mailer_command_in_the_runbook_parses(args):
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_the_units_the_runbook_names_are_in_deploy():
    named = set(re.findall(r"mailer-[a-z]+\.(?:service|timer)", DOC.read_text()))
    assert named and all((ROOT / "deploy" / unit).is_file() for unit in named), named


def test_the_json_in_the_runbook_is_valid():
    for block in code_blocks("json"):
        assert json.loads(block)["Statement"]
    for block in code_blocks("sh"):
        for match in re.finditer(r"--event-destination '([^']+)'", block):
            destination = json.loads(match.group(1))
            assert {"BOUNCE", "COMPLAINT", "DELIVERY"} <= set(destination["MatchingEventTypes"])


AWS_GLOBAL_OPTIONS = {"query", "output", "region", "profile"}
# Options the AWS CLI renames from the API's parameter names (awscli's argrename customisation).
AWS_CLI_RENAMES = {("sns", "subscribe", "notification-endpoint"): "endpoint"}


def aws_invocations() -> list[list[str]]:
    found = []
    for block in code_blocks("sh"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["aws"] and len(words) >= 3:
                found.append(words[1:])
    for span in re.findall(r"`(aws [^`]+)`", DOC.read_text()):
        found.append(shlex.split(span)[1:])
    return found


AWS_CALLS = aws_invocations()


@pytest.mark.parametrize("words", AWS_CALLS, ids=[" ".join(w[:2]) for w in AWS_CALLS])
def test_every_aws_command_in_the_runbook_matches_the_api(words):
    """The AWS CLI builds its commands from botocore's service models: the operation and each
    option must exist there (botocore comes with boto3)."""
    import botocore.session
    from botocore import xform_name

    service = botocore.session.get_session().get_service_model(words[0])
    operations = {xform_name(name, "-"): name for name in service.operation_names}
    assert words[1] in operations, f"aws {words[0]} has no {words[1]}"
    shape = service.operation_model(operations[words[1]]).input_shape
    members = {xform_name(name, "-"): member for name, member in shape.members.items()}
    for word in words[2:]:
        if not word.startswith("--"):
            continue
        option = word[2:].removeprefix("no-")
        option = AWS_CLI_RENAMES.get((words[0], words[1], option), option)
        assert option in members or option in AWS_GLOBAL_OPTIONS, f"{words[:2]}: --{option}"
    if "--event-destination" in words:
        definition = json.loads(words[words.index("--event-destination") + 1])
        destination_shape = members["event-destination"]
        assert set(definition) <= set(destination_shape.members)
        allowed = set(destination_shape.members["MatchingEventTypes"].member.enum)
        assert set(definition["MatchingEventTypes"]) <= allowed


def local_section_script() -> list[str]:
    """Section 1's shell lines in order, as a new operator types them (the web app aside).

    Installing into ``venv/`` is the packaging tests' job (tests/test_packaging.py), and cloning
    TWiR needs the internet: those lines are left out and ``venv/bin/mailer`` is this checkout's.
    """
    text = DOC.read_text()
    section = text[text.index("## 1. Try it locally"):text.index("## 2. Install on the server")]
    lines = []
    for block in re.findall(r"^```sh\n(.*?)^```", section, re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if not words or words[:2] == ["python3", "-m"] or "venv/bin/pip" in words:
                continue
            if "serve" in words or words[:2] == ["git", "clone"]:
                continue
            lines.append(line)
    return lines


@pytest.mark.slow
def test_the_local_part_of_the_runbook_runs_as_written_in_a_fresh_folder(tmp_path):
    """Run in order, section 1 gets from an empty folder to one message in the outbox."""
    import os
    import subprocess
    import sys

    script = local_section_script()
    assert any("send --issue" in line for line in script), script
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    env["HOME"] = str(tmp_path)
    folder = tmp_path / "twir-mailer" / "venv" / "bin"
    folder.mkdir(parents=True)
    (folder / "mailer").symlink_to(Path(sys.executable).with_name("mailer"))
    # The section's `mkdir twir-mailer` meets the folder made above for venv/bin/mailer.
    lines = [line.replace("mkdir twir-mailer", "mkdir -p twir-mailer") for line in script]
    result = subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{lines}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert len(list((tmp_path / "twir-mailer" / "outbox" / "new").iterdir())) == 1, result.stdout
    assert (tmp_path / "twir-mailer" / "out" / "644.html").is_file()
    assert (tmp_path / "twir-mailer" / "my-templates").is_dir()
