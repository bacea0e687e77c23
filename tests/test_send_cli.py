"""`mailer send` as an operator (or cron) runs it: a real process, a real SQLite file, the outbox."""

from __future__ import annotations


import pytest
from sqlalchemy import select, update

from mailer.domain import DeliveryStatus
from mailer.store.models import Campaign, Delivery, SendWorker
from tests.mailer_cli import mailer
from tests.fakes import add_readers
from tests.send_runs import campaigns, outbox_messages

pytestmark = pytest.mark.slow


def test_make_demo_sends_once_and_a_second_run_says_it_is_done(mailer_env):
    assert mailer(mailer_env, "db", "upgrade").returncode == 0
    added = mailer(mailer_env, "subscribers", "add", "demo-reader@example.org", "--confirmed")
    assert added.returncode == 0, added.stderr

    first = mailer(mailer_env, "send", "--issue", "644", "--yes")
    assert first.returncode == 0, first.stderr
    assert "no mail leaves" in first.stdout
    assert "Traceback" not in first.stderr
    messages = outbox_messages(mailer_env)
    assert [m["To"] for m in messages] == ["demo-reader@example.org"]
    assert "644" in messages[0]["Subject"]
    assert messages[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    second = mailer(mailer_env, "send", "--issue", "644", "--yes")
    assert second.returncode == 0
    assert "already sent" in second.stdout
    assert len(outbox_messages(mailer_env)) == 1


def test_without_a_terminal_and_without_yes_nothing_is_sent(mailer_env, engine):
    add_readers(engine, "a@example.org")
    result = mailer(mailer_env, "send", "--issue", "644", stdin="")
    assert result.returncode != 0
    assert result.stderr.count("error:") == 1 and "--yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert outbox_messages(mailer_env) == [] and campaigns(engine) == []


def test_dry_run_counts_the_audience_and_sends_nothing(mailer_env, engine):
    add_readers(engine, "a@example.org", "b@example.org")
    add_readers(engine, "pending@example.org", status="pending")
    result = mailer(mailer_env, "send", "--issue", "644", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "2 confirmed readers" in result.stdout and "nothing sent" in result.stdout
    assert outbox_messages(mailer_env) == [] and campaigns(engine) == []


def test_a_test_send_goes_to_one_address_outside_the_campaign(mailer_env, engine):
    add_readers(engine, "a@example.org")
    result = mailer(mailer_env, "send", "--issue", "644", "--to", "Editor@Example.org")
    assert result.returncode == 0, result.stderr
    assert [m["To"] for m in outbox_messages(mailer_env)] == ["Editor@example.org"]
    assert campaigns(engine) == []
    # the real send afterwards still goes to everyone
    assert mailer(mailer_env, "send", "--issue", "644", "--yes").returncode == 0
    assert len(outbox_messages(mailer_env)) == 2


def test_a_canary_then_a_resume_reaches_everyone_once(mailer_env, engine):
    readers = [f"r{n}@example.org" for n in range(5)]
    add_readers(engine, *readers)
    canary = mailer(mailer_env, "send", "--issue", "644", "--yes", "--limit", "2")
    assert canary.returncode == 0, canary.stderr
    assert len(outbox_messages(mailer_env)) == 2
    assert canary.stdout.strip().splitlines()[-1] == "sent 2 of 5; run the same command to continue"

    rest = mailer(mailer_env, "send", "--issue", "644", "--yes")
    assert rest.returncode == 0, rest.stderr
    assert "resuming campaign" in rest.stdout
    assert sorted(m["To"] for m in outbox_messages(mailer_env)) == readers


def test_not_before_waits_for_the_grace_period(mailer_env, engine):
    add_readers(engine, "a@example.org")
    early = mailer(mailer_env, "send", "--issue", "latest", "--yes", "--not-before", "999999h")
    assert early.returncode == 0
    assert "not due yet" in early.stdout
    assert outbox_messages(mailer_env) == [] and campaigns(engine) == []

    due = mailer(mailer_env, "send", "--issue", "latest", "--yes", "--not-before", "24h")
    assert due.returncode == 0, due.stderr  # the sample issue is from March 2026
    again = mailer(mailer_env, "send", "--issue", "latest", "--yes", "--not-before", "24h")
    assert again.returncode == 0 and "already sent" in again.stdout
    assert len(outbox_messages(mailer_env)) == 1


def test_bad_input_is_one_error_line_and_changes_nothing(mailer_env, engine):
    add_readers(engine, "a@example.org")
    for args, words in [
        (["--issue", "99999", "--yes"], "99999"),
        (["--issue", "six", "--yes"], "issue number"),
        (["--issue", "644", "--yes", "--not-before", "soon"], "--not-before"),
        (["--issue", "644", "--to", "not-an-address"], "not-an-address"),
    ]:
        result = mailer(mailer_env, "send", *args)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr
        assert result.stderr.count("error:") == 1 and words in result.stderr, result.stderr
    assert outbox_messages(mailer_env) == [] and campaigns(engine) == []


def test_unknown_rows_are_reported_and_resent_only_when_asked(mailer_env, engine):
    add_readers(engine, "a@example.org", "b@example.org", "c@example.org")
    assert mailer(mailer_env, "send", "--issue", "644", "--yes", "--limit", "1").returncode == 0
    # As a SIGKILL would leave it: b's row in flight under a worker whose process is gone.
    dead = "otherhost:1:dead"
    with engine.begin() as connection:
        campaign_id = connection.execute(select(Campaign.__table__.c.id)).scalar_one()
        connection.execute(update(Delivery.__table__)
                           .where(Delivery.__table__.c.email == "b@example.org")
                           .values(status=DeliveryStatus.SENDING.value, claimed_by=dead))
        from mailer.domain import utcnow
        from datetime import timedelta
        connection.execute(SendWorker.__table__.insert().values(
            id=dead, campaign_id=campaign_id, heartbeat_at=utcnow() - timedelta(hours=1), rate=1))

    resumed = mailer(mailer_env, "send", "--issue", "644", "--yes")
    assert resumed.returncode == 4, resumed.stderr  # a row left unknown: not finished
    assert "1 deliveries are unknown" in resumed.stderr and "--resend-unknown" in resumed.stderr
    assert sorted(m["To"] for m in outbox_messages(mailer_env)) == ["a@example.org", "c@example.org"]

    again = mailer(mailer_env, "send", "--issue", "644", "--yes")
    assert "already sent" in again.stdout and "--resend-unknown" in again.stdout

    forced = mailer(mailer_env, "send", "--issue", "644", "--yes", "--resend-unknown")
    assert forced.returncode == 0, forced.stderr
    assert sorted(m["To"] for m in outbox_messages(mailer_env)) == [
        "a@example.org", "b@example.org", "c@example.org"]


def test_worker_joins_a_campaign_being_sent_and_finishes_it(mailer_env, engine):
    idle = mailer(mailer_env, "worker")
    assert idle.returncode == 0 and "nothing to do" in idle.stdout

    add_readers(engine, "a@example.org", "b@example.org", "c@example.org")
    assert mailer(mailer_env, "send", "--issue", "644", "--yes", "--limit", "1").returncode == 0
    with engine.begin() as connection:  # as if another machine were still sending it
        connection.execute(update(Campaign.__table__).values(status="sending"))

    joined = mailer(mailer_env, "worker")
    assert joined.returncode == 0, joined.stderr
    assert "finished" in joined.stdout
    assert sorted(m["To"] for m in outbox_messages(mailer_env)) == [
        "a@example.org", "b@example.org", "c@example.org"]


def test_a_worker_joining_while_the_canary_is_judged_sends_only_the_sample(mailer_env, engine):
    """`mailer send --canary` on one machine has chosen its sample and not judged it yet: a worker
    started on another machine must not mail the rest of the list before the verdict."""
    readers = [f"reader{n}@example.org" for n in range(12)]
    add_readers(engine, *readers)
    assert mailer(mailer_env, "send", "--issue", "644", "--yes", "--limit", "1").returncode == 0
    table = Delivery.__table__
    with engine.begin() as connection:  # as `send --canary 3` leaves it while its sample goes out
        queued = connection.execute(select(table.c.id, table.c.email).where(
            table.c.status == DeliveryStatus.QUEUED.value).order_by(table.c.id).limit(3)).all()
        connection.execute(update(table).where(table.c.id.in_([row.id for row in queued]))
                           .values(canary=True))
        connection.execute(update(Campaign.__table__).values(status="sending", canary_size=3))
    sent_before = {m["To"] for m in outbox_messages(mailer_env)}

    joined = mailer(mailer_env, "worker")

    assert joined.returncode == 0, joined.stderr
    assert "canary is not judged yet" in joined.stdout
    sent_now = {m["To"] for m in outbox_messages(mailer_env)} - sent_before
    assert sent_now == {row.email for row in queued}
    with engine.connect() as connection:
        still_queued = connection.execute(select(table.c.email).where(
            table.c.status == DeliveryStatus.QUEUED.value)).scalars().all()
    assert len(still_queued) == len(readers) - 1 - 3
