"""What one SES notification for many recipients costs the database (issue 19, item 14b): each
recipient's event keeps its own part of the payload, not the whole payload again."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from mailer.config import get_settings
from mailer.events.apply import ingest_document
from mailer.store.db import session
from mailer.store.models import DeliveryEventRecord
from tests.event_support import many_recipient_bounce

RECIPIENTS = 300  # the 3,000 costs main 3,000 x the payload; benchmarks/event_storage.py




def stored(engine) -> tuple[int, int, int]:
    """Events, their stored payload bytes in all, and the most one event holds."""
    raw_size = func.length(DeliveryEventRecord.raw)
    with session(engine) as db:
        return db.exec(select(func.count(), func.sum(raw_size), func.max(raw_size))).one()


def compact_size(payload: dict) -> int:
    return len(json.dumps(payload, separators=(",", ":")))


def test_a_bounce_for_many_recipients_stores_each_ones_part(mailer_env, engine):
    payload = many_recipient_bounce(RECIPIENTS)
    result = ingest_document(engine, payload, get_settings())
    assert result.recorded["bounce"] == RECIPIENTS
    events, total, largest = stored(engine)
    assert events == RECIPIENTS
    # each event costs what a bounce for one recipient would (main: the whole payload each)
    assert largest <= compact_size(many_recipient_bounce(1)) + 200
    assert total < RECIPIENTS * compact_size(payload) / 20


def test_each_event_keeps_its_recipients_part_and_the_shared_mail(mailer_env, engine):
    payload = many_recipient_bounce(3)
    ingest_document(engine, payload, get_settings())
    with session(engine) as db:
        records = db.exec(select(DeliveryEventRecord).order_by(DeliveryEventRecord.id)).scalars()
        raws = {record.recipient: json.loads(record.raw) for record in records}
    assert set(raws) == {"gone0000@example.net", "gone0001@example.net", "gone0002@example.net"}
    mine = raws["gone0001@example.net"]
    assert [r["emailAddress"] for r in mine["bounce"]["bouncedRecipients"]] == [
        "gone0001@example.net"]
    assert mine["bounce"]["bouncedRecipients"][0]["diagnosticCode"].endswith("no such user")
    assert mine["mail"]["destination"] == ["gone0001@example.net"]
    assert mine["mail"]["commonHeaders"]["to"] == ["Reader 1 <gone0001@example.net>"]
    assert mine["mail"]["messageId"] == payload["mail"]["messageId"]
    assert mine["mail"]["headers"] == payload["mail"]["headers"]
    assert mine["bounce"]["bounceType"] == "Permanent"
    assert "gone0000@example.net" not in json.dumps(mine)  # forgetting one reader is whole again
