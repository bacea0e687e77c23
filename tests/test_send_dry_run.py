"""Issue 20, item 16: `mailer send --dry-run` says what the real run would do.

A dry run of a finished issue used to print a plan for every reader while the real run said
"already sent". Each state is tried here as an operator would: the dry run first, then the real
run with the same options, and the two must agree (what they say, their exit code, and the dry
run sending nothing). In process, on a real SQLite file and the outbox.
"""

from __future__ import annotations

from sqlalchemy import select, update
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.store.models import Campaign, Delivery
from tests.mailer_cli import outbox
from tests.fakes import add_readers

READERS = [f"reader{n}@example.org" for n in range(5)]
SEND = ("send", "--issue", "644", "--yes")


def cli(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def dry_then_real(mailer_env, *args: str):
    """The dry run (checked to send nothing), then the real run with the same options."""
    before = len(outbox(mailer_env))
    dry = cli(*SEND, "--dry-run", *args)
    assert len(outbox(mailer_env)) == before, dry.output
    assert "Traceback" not in dry.output
    return dry, cli(*SEND, *args)


def statuses(engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(Campaign.__table__.c.status)).scalars())


def test_a_finished_issue_would_not_be_sent_again(mailer_env, engine):
    add_readers(engine, *READERS)
    assert cli(*SEND).exit_code == 0

    dry, real = dry_then_real(mailer_env)

    assert dry.exit_code == real.exit_code == 0
    assert "already sent" in real.output
    line = dry.stdout.strip().splitlines()[-1]
    assert line.startswith("dry run: issue 644 was already sent on ")
    assert "(campaign 1: 5 sent, 0 failed, 0 skipped)" in line
    assert line.endswith("nothing would be sent; --again starts a new campaign")
    assert "audience" not in dry.output  # no plan for a send that would not happen
    assert len(outbox(mailer_env)) == len(READERS) and statuses(engine) == ["finished"]


def test_a_finished_issue_with_again_would_start_a_new_campaign(mailer_env, engine):
    add_readers(engine, *READERS)
    assert cli(*SEND).exit_code == 0

    dry, real = dry_then_real(mailer_env, "--again")

    assert dry.exit_code == real.exit_code == 0, real.output
    assert "audience:  5 confirmed readers" in dry.output
    assert dry.stdout.strip().splitlines()[-1] == (
        "dry run: nothing sent (would start a new campaign for 5 readers)")
    assert "campaign 2 started" in real.output


def test_a_paused_campaign_would_stay_paused_without_resume(mailer_env, engine):
    add_readers(engine, *READERS)
    assert cli(*SEND, "--limit", "2").exit_code == 0
    with engine.begin() as connection:  # as the breaker leaves it
        connection.execute(update(Campaign.__table__).values(
            status="paused", pause_reason="hard bounces 2 of 2 sent = 100.00 %, at or above "
                                          "2.50 %"))

    dry, real = dry_then_real(mailer_env)

    assert dry.exit_code == real.exit_code == 3
    assert dry.stderr.strip() == "dry run: " + real.stderr.strip()
    assert "paused by the reputation breaker: hard bounces 2 of 2 sent" in real.stderr
    assert "--resume" in dry.stderr and "audience" not in dry.output
    assert len(outbox(mailer_env)) == 2

    dry, real = dry_then_real(mailer_env, "--resume")
    assert dry.exit_code == real.exit_code == 0, real.output
    assert dry.stdout.strip().splitlines()[-1] == (
        "dry run: nothing sent (would resume campaign 1: 3 of 5 readers left)")
    assert "resuming campaign 1" in real.output and len(outbox(mailer_env)) == 5


def test_a_partly_sent_campaign_would_resume_with_those_left(mailer_env, engine):
    add_readers(engine, *READERS)
    assert cli(*SEND, "--limit", "2").exit_code == 0

    dry, real = dry_then_real(mailer_env, "--limit", "2")

    assert dry.exit_code == real.exit_code == 0, real.output
    assert dry.stdout.strip().splitlines()[-1] == (
        "dry run: nothing sent (would resume campaign 1: 3 of 5 readers left, 2 of them now "
        "(--limit))")
    assert "resuming campaign 1" in real.output
    assert real.stdout.strip().splitlines()[-1] == "sent 4 of 5; run the same command to continue"
    assert len(outbox(mailer_env)) == 4


def test_an_issue_not_due_yet_would_not_be_sent(mailer_env, engine):
    add_readers(engine, *READERS)

    dry, real = dry_then_real(mailer_env, "--not-before", "999999h")

    assert dry.exit_code == real.exit_code == 0
    said = real.stdout.strip().splitlines()[-1]
    assert "is not due yet: it will be sent after " in said and said.endswith("nothing sent")
    due = said.split("sent after ")[1].split(" UTC")[0]
    planned = dry.stdout.strip().splitlines()[-1]
    assert planned.startswith(f"dry run: not yet: issue 644 would be sent after {due} UTC (in ")
    assert planned.endswith("); nothing would be sent")
    assert "audience" not in dry.output
    assert outbox(mailer_env) == [] and statuses(engine) == []


def test_a_campaign_over_the_breakers_line_would_pause_before_its_first_message(
        mailer_env, engine, monkeypatch):
    for name, value in {"MAILER_BREAKER_MIN_SENT": "2", "MAILER_BREAKER_MIN_BOUNCES": "2"}.items():
        monkeypatch.setenv(name, value)
    add_readers(engine, *READERS)
    assert cli(*SEND, "--limit", "2").exit_code == 0
    with engine.begin() as connection:  # both readers' addresses bounced for good
        connection.execute(update(Delivery.__table__).where(
            Delivery.__table__.c.status == "sent").values(bounce_type="permanent"))

    dry, real = dry_then_real(mailer_env)

    assert dry.exit_code == real.exit_code == 3
    reason = "hard bounces 2 of 2 sent = 100.00 %, at or above 2.50 %"
    assert dry.stderr.strip().splitlines()[-1] == (
        f"dry run: nothing sent (the reputation breaker would pause campaign 1 before its "
        f"first message: {reason}; review, then --resume)")
    assert f"paused by the reputation breaker: {reason}" in real.stderr
    assert len(outbox(mailer_env)) == 2 and statuses(engine) == ["paused"]
