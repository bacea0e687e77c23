"""Issue 21 §1: MAILER_UNKNOWN_SETTLE_AFTER is a duration; a value that is not one is refused
with one line and exit 2, before anything is sent. Run in process on a real SQLite file."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import Settings, get_settings
from tests.mailer_cli import outbox
from tests.fakes import add_readers


@pytest.mark.parametrize(("written", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600),
                                                  ("30", 30)])
def test_the_settle_window_reads_as_a_duration(mailer_env, written, seconds):
    assert Settings(unknown_settle_after=written).unknown_settle_after == seconds


def test_the_settle_window_is_fifteen_minutes_unless_set(mailer_env):
    assert Settings().unknown_settle_after == 15 * 60


def test_a_settle_window_that_is_no_duration_is_refused_in_one_line(
        mailer_env, engine, monkeypatch):
    add_readers(engine, "a@example.org")
    monkeypatch.setenv("MAILER_UNKNOWN_SETTLE_AFTER", "soon")
    get_settings.cache_clear()

    result = CliRunner().invoke(app, ["send", "--issue", "644", "--yes"])

    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "MAILER_UNKNOWN_SETTLE_AFTER" in line and "90s, 15m, 1h" in line
    assert outbox(mailer_env) == []
