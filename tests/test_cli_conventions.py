"""Conventions every command keeps: output that is not on a terminal is never cut, a "no" at a
prompt says what did not happen, and counts are written one way ("1 row", "2,000 rows")."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from tests.mailer_cli import mailer_process

MAILER = str(Path(sys.executable).with_name("mailer"))
LONG = "a-very-long-local-part-that-no-table-should-cut@a-long-subdomain.example-newsletter.org"


def cli(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), input=stdin)


def test_tables_and_lines_sent_to_a_pipe_are_never_cut(mailer_env, monkeypatch) -> None:
    """Rich fitted piped output to 80 columns: the table showed 'a-very-long-local-part-for-testin…'
    and `show` broke the address across two lines."""
    for name in ("COLUMNS", "LINES"):  # a pipe with no width set (another test may have set one)
        monkeypatch.delenv(name, raising=False)
    # a real process writing to a real pipe: that is the point (an in-process console keeps
    # whatever width an earlier test gave it)
    assert mailer_process(mailer_env, "subscribers", "add", LONG, "--confirmed").returncode == 0
    listing = mailer_process(mailer_env, "subscribers", "list")
    assert LONG in listing.stdout and "…" not in listing.stdout, listing.stdout
    shown = mailer_process(mailer_env, "subscribers", "show", LONG)
    assert any(line.startswith(f"{LONG}: active") for line in shown.stdout.splitlines()), shown.stdout


def test_counts_are_written_one_way() -> None:
    from mailer.cli._app import counted

    assert [counted(n, "row") for n in (0, 1, 2, 2000)] == ["0 rows", "1 row", "2 rows",
                                                             "2,000 rows"]
    assert counted(1, "reader") == "1 reader" and counted(1_000_000, "reader") == "1,000,000 readers"


def test_an_import_of_one_row_says_one_row(mailer_env, tmp_path: Path) -> None:
    export = tmp_path / "one.csv"
    export.write_text("email\nreader@example.org\n")
    result = cli("subscribers", "import", str(export))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 row: 1 added"), result.stdout


def _answer_on_a_terminal(args: list[str], answer: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the installed mailer with a real terminal as its input and output; type ``answer``."""
    controller, terminal = os.openpty()
    process = subprocess.Popen([MAILER, *args], stdin=terminal, stdout=terminal, stderr=terminal,
                               env={**os.environ, **env, "COLUMNS": "200"}, cwd=cwd,
                               close_fds=True)
    os.close(terminal)
    output, answered, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other side closed: the command ended
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"?" in output.rsplit(b"\n", 1)[-1]:
                os.write(controller, answer.encode() + b"\n")
                answered = True
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=60), output.decode(errors="replace")


@pytest.mark.slow
def test_answering_no_to_send_says_not_sent(mailer_env, tmp_path: Path) -> None:
    assert cli("subscribers", "add", "reader@example.org", "--confirmed").exit_code == 0
    code, output = _answer_on_a_terminal(["send", "--issue", "644"], "n", mailer_env, tmp_path)
    assert code == 1, output
    assert "Send now?" in output and "not sent: you answered no, so no reader was mailed" in output
    assert not (tmp_path / "outbox" / "new").exists() or not any((tmp_path / "outbox" / "new").iterdir())


@pytest.mark.slow
def test_answering_no_to_forget_says_nothing_was_erased(mailer_env, tmp_path: Path) -> None:
    assert cli("subscribers", "add", "reader@example.org", "--confirmed").exit_code == 0
    code, output = _answer_on_a_terminal(["subscribers", "forget", "reader@example.org"], "n",
                                         mailer_env, tmp_path)
    assert code == 1, output
    assert "not erased: reader@example.org is as it was" in output and "Aborted" not in output
    assert "reader@example.org: active" in cli("subscribers", "show", "reader@example.org").stdout


@pytest.mark.parametrize("args", [
    ["send", "--issue", "abc", "--dry-run"],
    ["render", "--issue", "six-forty-four"],
    ["check"],
    ["check", "--issue", "zz"],
    ["send", "--no-such-option"],  # click's own usage error, for comparison
])
def test_usage_mistakes_exit_2_like_clicks_own(mailer_env, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
