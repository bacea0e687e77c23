"""Issue 21 §1: rows left `unknown` (SES's answer was lost) settle themselves, with no operator.

Through the real pieces: `mailer send` against the fault-injecting SES peer (answers lost after
acceptance, requests dropped before it), SES events for what the peer accepted replayed with
`mailer events replay`, a short settle window, and the next timer run. Copies are counted where
a reader would see them: at the SES endpoint, per recipient."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.domain import DeliveryStatus
from tests.fakes import add_readers, ses_event
from tests.test_send_lost_answers import mailer
from tests.test_send_ses import ledger_rows, readers, run_send

pytestmark = [pytest.mark.slow, pytest.mark.peer]

READERS = 500
SETTLE = "1s"



def replay_events_for_accepted(env: dict, fake_ses, tmp_path: Path, name: str) -> None:
    """Send and Delivery events for every message the endpoint accepted, as SES would."""
    now = datetime.now(UTC)
    lines = [json.dumps(ses_event(kind, message, now)) + "\n"
             for message in fake_ses.messages() for kind in ("Send", "Delivery")]
    events = tmp_path / name
    events.write_text("".join(lines))
    replayed = mailer(env, "events", "replay", str(events))
    assert replayed.returncode == 0, replayed.stderr


def test_lost_and_dropped_answers_settle_and_the_next_run_sends_each_missing_reader_once(
        mailer_env, engine, fake_ses, tmp_path):
    fake_ses.control(max_send_rate=400, latency=0.01, lose_answer_rate=0.03,
                     drop_request_rate=0.03, seed=21, keep=True)
    everyone = readers(READERS)
    add_readers(engine, *everyone)
    env = {**os.environ, **mailer_env, **fake_ses.env, "MAILER_UNKNOWN_SETTLE_AFTER": SETTLE}

    first = run_send(env, "--concurrency", "8")

    assert "Traceback" not in first.stderr
    stats = fake_ses.stats()
    assert stats["answers_lost"] >= 5 and stats["requests_dropped"] >= 5  # both faults happened
    unknown = {a for a, row in ledger_rows(engine).items() if row.status == DeliveryStatus.UNKNOWN}
    assert unknown == set(stats["lost_recipients"]) | set(stats["dropped_recipients"])
    assert first.returncode == 4, first.stdout + first.stderr  # not finished: rows unknown
    assert "unknown rows:" in first.stderr

    replay_events_for_accepted(env, fake_ses, tmp_path, "events-1.jsonl")
    time.sleep(1.2)  # the settle window (MAILER_UNKNOWN_SETTLE_AFTER=1s) passes
    fake_ses.control(lose_answer_rate=0.0, drop_request_rate=0.0)
    second = run_send(env)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "re-sending" in second.stdout and "whose SES answer was lost" in second.stdout
    copies = fake_ses.stats()["per_recipient"]
    assert set(copies) == set(everyone)  # nobody missed
    assert max(copies.values()) == 1, {a: n for a, n in copies.items() if n > 1}  # nobody twice
    assert {row.status for row in ledger_rows(engine).values()} == {DeliveryStatus.SENT}
    third = run_send(env)
    assert third.returncode == 0 and "already sent" in third.stdout


def test_without_any_event_nothing_is_resent_and_the_run_says_why(
        mailer_env, engine, fake_ses, tmp_path):
    fake_ses.control(max_send_rate=400, latency=0.01, lose_answers=3, keep=True)
    everyone = readers(60)
    add_readers(engine, *everyone)
    env = {**os.environ, **mailer_env, **fake_ses.env, "MAILER_UNKNOWN_SETTLE_AFTER": SETTLE}

    first = run_send(env, "--concurrency", "2")
    assert first.returncode == 4, first.stdout + first.stderr
    time.sleep(1.2)  # past the window, but no event ever arrived: the event path is unproven
    again = run_send(env)

    assert again.returncode == 4, again.stdout + again.stderr
    assert fake_ses.stats()["requests"] == len(everyone)  # nothing re-sent
    assert "not re-sent" in again.stderr and "mailer doctor" in again.stderr
    assert "Send events" in again.stderr
    statuses = [row.status for row in ledger_rows(engine).values()]
    assert statuses.count(DeliveryStatus.UNKNOWN) == 3
