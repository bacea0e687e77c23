"""Issue 20, item 3: an option that only means something with another is refused without it.

`mailer send --issue 644 --canary-wait 20m --yes` without `--canary` used to send to everyone,
the canary silently dropped. Every such pair across the CLI is listed here; each is refused
with exit 2 and one `error:` line, before anything is sent or changed. Run in process, on a
real SQLite file and the outbox.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.store.models import Campaign, Subscriber
from tests.mailer_cli import outbox
from tests.fakes import add_readers

SEND = ("send", "--issue", "644", "--yes")
TO = ("--to", "editor@example.org")
WITH_TO = "cannot be used with --to"

# (command line, what the one error line says)
PAIRS = [
    ((*SEND, "--canary-wait", "20m"), "--canary-wait needs --canary"),
    ((*SEND, "--dry-run", "--canary-wait", "5m"), "--canary-wait needs --canary"),
    ((*SEND, *TO, "--limit", "1"), f"--limit {WITH_TO}"),
    ((*SEND, *TO, "--resume"), f"--resume {WITH_TO}"),
    ((*SEND, *TO, "--again"), f"--again {WITH_TO}"),
    ((*SEND, *TO, "--resend-unknown"), f"--resend-unknown {WITH_TO}"),
    ((*SEND, *TO, "--not-before", "24h"), f"--not-before {WITH_TO}"),
    ((*SEND, *TO, "--canary", "2%"), f"--canary {WITH_TO}"),
    ((*SEND, *TO, "--preview-to", "ed@example.org"), f"--preview-to {WITH_TO}"),
    ((*SEND, *TO, "--dry-run", "--limit", "1"), f"--limit {WITH_TO}"),
    ((*SEND, "--again", "--resume"), "--again cannot be used with --resume"),
    ((*SEND, "--again", "--resend-unknown"), "--again cannot be used with --resend-unknown"),
    (("stats", "--every", "1"), "--every needs --watch"),
    (("stats", "--issue", "644", "--every", "1"), "--every needs --watch"),
    (("stats", "--watch"), "--watch needs --issue N"),
    (("stats", "--weeks", "4"), "--weeks needs --subscribers"),
    (("stats", "--issue", "644", "--weeks", "4"), "--weeks needs --subscribers"),
    (("doctor", "--wait", "5"), "--wait needs --live"),
    (("doctor", "--late-after", "5"), "--late-after needs --live"),
    (("doctor", "--live", "--json"), "--json cannot be used with --live"),
]


@pytest.fixture
def readers(mailer_env, engine, monkeypatch):
    # doctor must never reach AWS from a test: a closed loopback port, were it to try
    monkeypatch.setenv("MAILER_SES_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    add_readers(engine, "ada@example.org", "brendan@example.org")
    return engine


def state(engine) -> tuple:
    with engine.connect() as connection:
        return (connection.execute(select(Campaign.__table__)).all(),
                connection.execute(select(Subscriber.__table__)).all())


@pytest.mark.parametrize(("args", "said"), PAIRS, ids=[" ".join(a) for a, _ in PAIRS])
def test_an_option_without_the_one_it_needs_is_refused_and_nothing_happens(
        readers, mailer_env, args, said):
    before = state(readers)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: {said}"), line
    assert "Traceback" not in result.output
    assert outbox(mailer_env) == []
    assert state(readers) == before


def test_the_options_still_work_with_the_one_they_need(readers, mailer_env):
    get_settings.cache_clear()
    runner = CliRunner()
    planned = runner.invoke(app, [*SEND, "--dry-run", "--canary", "1", "--canary-wait", "5m"])
    assert planned.exit_code == 0, planned.output
    assert "canary:    1 reader at random first, then 5m00s for their events" in planned.output
    assert runner.invoke(app, ["stats", "--subscribers", "--weeks", "4"]).exit_code == 0
    assert runner.invoke(app, [*SEND, *TO, "--dry-run"]).exit_code == 0


def test_a_canary_wait_that_is_not_a_duration_is_named_in_the_error(readers, mailer_env):
    get_settings.cache_clear()
    result = CliRunner().invoke(app, [*SEND, "--canary", "1", "--canary-wait", "soon"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --canary-wait: cannot read 'soon' as a duration (examples: 24h, 90m, 2d)"]
    assert outbox(mailer_env) == [] and state(readers)[0] == []
