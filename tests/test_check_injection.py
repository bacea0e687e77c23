"""`mailer check` quotes an issue's content in its findings; that content must stay text, for a
terminal and for the GitHub runner that reads the check's output (issue 19, item 9).

The shipped workflow runs `mailer check` on pull requests, so an issue file is written by whoever
opens one. The runner obeys any stdout line starting with ``::command`` and any line holding
``##[command]``; a terminal obeys escape sequences. Run in process with CliRunner; the runner's
command parsing is modelled below after actions/runner's ActionCommandManager.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from tests.runner_commands import runner_commands

HOSTILE = """Title: This Week in Rust 902
Number: 902
Date: 2031-05-07

Hello.

* [masked](http://e.example/##[add-mask]secret)
* [one
::error file=x.md,line=1::pwned]()
* [terminal](http://e.example/\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eexe)
"""
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture
def hostile(mailer_env, tmp_path) -> Path:
    path = tmp_path / "2031,05:07-twir.md"  # ',' and ':' end a property of a workflow command
    path.write_text(HOSTILE, encoding="utf-8")
    return path


def check(*args: str, github: bool = False):
    env = {"GITHUB_ACTIONS": "true" if github else "", "COLUMNS": "250"}
    return CliRunner().invoke(app, ["check", *args], env=env)


def test_under_github_only_the_checks_own_annotations_are_obeyed(hostile):
    result = check(str(hostile), github=True)
    assert result.exit_code == 1, result.output
    obeyed = runner_commands(result.stdout)
    assert {name for name, _ in obeyed} == {"error", "warning"}, obeyed
    escaped_file = str(hostile).replace(",", "%2C").replace(":", "%3A")
    assert all(f" file={escaped_file},line=" in line for _, line in obeyed), obeyed
    messages = {line.split("::", 2)[2] for _, line in obeyed}
    assert "link is not https: http://e.example/##[add-mask]secret" in messages
    assert "link without a target: [one%0A::error file=x.md,line=1::pwned]" in messages


def test_findings_reach_a_terminal_as_text(hostile):
    result = check(str(hostile))
    assert result.exit_code == 1, result.output
    for raw in RAW_CONTROLS:
        assert raw not in result.stdout, f"{raw!r} reached the terminal"
    assert "http://e.example/\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202eexe" in result.stdout
    assert not any(line.lstrip().startswith("::") for line in result.stdout.splitlines())


def test_json_findings_keep_the_text_exact_and_give_the_runner_nothing_to_obey(hostile):
    result = check("--json", str(hostile), github=True)
    assert result.exit_code == 1, result.output
    assert runner_commands(result.stdout) == []
    messages = [finding["message"] for finding in json.loads(result.stdout)["findings"]]
    assert "link is not https: http://e.example/##[add-mask]secret" in messages
