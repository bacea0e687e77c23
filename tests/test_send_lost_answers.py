"""Issue 14: an SES endpoint that takes the message and then loses its answer must never cause
a second copy. Each lost answer leaves its row `unknown` (with the reason), the send says how
many and how they settle, and a later SES Send event settles each one as sent.

The copies are counted where a reader would see them: at the SES endpoint, per recipient."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from mailer.domain import DeliveryStatus
from mailer.store.db import get_engine
from tests.fakes import add_readers
from tests.test_send_ses import MAILER, ledger_rows, readers, run_send, start_send

pytestmark = [pytest.mark.slow, pytest.mark.peer]

READERS = 500
LOSS = 0.02


def ses_send_event(message: dict) -> dict:
    """The SES Send event the configuration set would publish for a message it took."""
    tags = {tag["Name"]: [tag["Value"]] for tag in message["tags"]}
    return {"eventType": "Send", "send": {},
            "mail": {"timestamp": "2026-03-04T09:12:29.990Z", "messageId": message["id"],
                     "source": "newsletter@example.org", "destination": message["destinations"],
                     "tags": tags}}


def mailer(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MAILER, *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(env["MAILER_OUTBOX_DIR"]).parent)


def assert_no_duplicates_and_every_unknown_accounted_for(engine, fake_ses, everyone, outputs):
    stats = fake_ses.stats()
    copies = stats["per_recipient"]
    assert stats["answers_lost"] >= 3  # the fault really happened
    assert max(copies.values()) == 1, {a: n for a, n in copies.items() if n > 1}
    assert set(copies) == set(everyone)  # and nobody was skipped
    # botocore resent nothing behind our back: one request per reader
    assert stats["requests"] == len(everyone)
    rows = ledger_rows(engine)
    unknown = {address for address, row in rows.items() if row.status == DeliveryStatus.UNKNOWN}
    assert unknown == set(stats["lost_recipients"])
    assert all("answer lost" in rows[address].error for address in unknown)
    assert {row.status for address, row in rows.items() if address not in unknown} == {
        DeliveryStatus.SENT}
    said = sum(int(n) for n in re.findall(r"(\d+) deliver(?:y is|ies are) unknown", outputs))
    assert said >= len(unknown) and "--resend-unknown" in outputs and "Send or Delivery" in outputs
    return unknown


def settle_with_send_events(env: dict, fake_ses, unknown: set[str], tmp_path: Path) -> None:
    lost = [m for m in fake_ses.messages() if m["destinations"][0] in unknown]
    events = tmp_path / "send-events.jsonl"
    events.write_text("".join(json.dumps(ses_send_event(m)) + "\n" for m in lost))
    replayed = mailer(env, "events", "replay", str(events))
    assert replayed.returncode == 0, replayed.stderr


def test_lost_answers_on_sqlite_make_unknown_rows_not_duplicates(
        mailer_env, engine, fake_ses, tmp_path):
    fake_ses.control(max_send_rate=400, latency=0.01, lose_answer_rate=LOSS, seed=14, keep=True)
    everyone = readers(READERS)
    add_readers(engine, *everyone)
    env = {**os.environ, **mailer_env, **fake_ses.env}

    result = run_send(env, "--concurrency", "8")

    assert result.returncode == 4, result.stderr  # not finished while rows are unknown
    assert "Traceback" not in result.stderr
    unknown = assert_no_duplicates_and_every_unknown_accounted_for(
        engine, fake_ses, everyone, result.stdout + result.stderr)
    stats = json.loads(mailer(env, "stats", "--issue", "644", "--json").stdout)
    assert stats["summary"]["unknown"] == len(unknown)

    # A later run inside the settle window sends nothing again on its own.
    again = run_send(env)
    assert again.returncode == 4 and fake_ses.stats()["requests"] == READERS
    assert f"{len(unknown)} deliveries are unknown" in again.stdout

    settle_with_send_events(env, fake_ses, unknown, tmp_path)
    rows = ledger_rows(engine)
    assert {rows[address].status for address in unknown} == {DeliveryStatus.SENT}
    stats = json.loads(mailer(env, "stats", "--issue", "644", "--json").stdout)
    assert stats["summary"]["unknown"] == 0 and stats["summary"]["sent"] == READERS


@pytest.mark.postgres
def test_lost_answers_on_postgres_with_three_workers_make_no_duplicates(
        mailer_env, pg_url, monkeypatch, fake_ses, tmp_path):
    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    engine = get_engine(pg_url)
    fake_ses.control(max_send_rate=400, latency=0.01, lose_answer_rate=LOSS, seed=41, keep=True,
                     lose_how="reset")
    everyone = readers(READERS)
    add_readers(engine, *everyone)
    env = {**os.environ, **mailer_env, **fake_ses.env, "MAILER_DATABASE_URL": pg_url}

    processes = [start_send(env, "--concurrency", "4") for _ in range(3)]
    results = [process.communicate(timeout=240) for process in processes]

    for process, (_, err) in zip(processes, results, strict=False):
        assert process.returncode in (0, 4), err  # 4: the campaign has rows unknown
        assert "Traceback" not in err
    rows = ledger_rows(engine)
    assert len({row.claimed_by for row in rows.values()}) >= 2  # really shared
    outputs = "".join(out + err for out, err in results)
    unknown = assert_no_duplicates_and_every_unknown_accounted_for(
        engine, fake_ses, everyone, outputs)

    settle_with_send_events(env, fake_ses, unknown, tmp_path)
    assert {row.status for row in ledger_rows(engine).values()} == {DeliveryStatus.SENT}


def test_every_answer_lost_stops_the_send_instead_of_marking_everyone_unknown(
        mailer_env, engine, fake_ses):
    fake_ses.control(max_send_rate=200, lose_answer_rate=1.0)
    add_readers(engine, *readers(200))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    result = run_send(env, "--concurrency", "4")

    assert result.returncode == 1
    assert "answers in a row were lost" in result.stderr and "Traceback" not in result.stderr
    statuses = [row.status for row in ledger_rows(engine).values()]
    assert statuses.count(DeliveryStatus.UNKNOWN) < 30  # stopped early
    assert statuses.count(DeliveryStatus.QUEUED) > 150  # the rest waits for a resume
    assert fake_ses.stats()["requests"] == statuses.count(DeliveryStatus.UNKNOWN)
