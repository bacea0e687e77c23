"""A hand-built ledger for the delivery stats: issue 644 with bounces, a complaint and
unsubscribes, and a clean issue 643, written row by row with the models so every expected
figure can be counted by hand (see build_ledger)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailer.domain import DeliveryStatus, SubscriberStatus
from mailer.store.models import Campaign, Delivery, DeliveryEventRecord, Subscriber, SubscriberChange


START_644 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday
START_643 = datetime(2026, 11, 11, 10, 0, tzinfo=UTC)
# issue 644: 40 recipients on three domains (one written in mixed case)
DOMAINS_644 = ["gmail.com"] * 20 + ["example.com"] * 10 + ["Example.NET"] * 10
HARD_BOUNCE = "smtp; 550 5.1.1 user unknown"
SOFT_BOUNCE = "smtp; 452 4.2.2 mailbox full"


def after_start(minutes: float, start: datetime = START_644) -> datetime:
    return start + timedelta(minutes=minutes)


def add_subscribers(db, count: int, domains: list[str], prefix: str) -> list[Subscriber]:
    people = [
        Subscriber(email=f"{prefix}{i}@{domains[i]}", status=SubscriberStatus.ACTIVE,
                   created_at=datetime(2026, 11, 2, 12, tzinfo=UTC),
                   confirmed_at=datetime(2026, 11, 2, 12, 5, tzinfo=UTC))
        for i in range(count)
    ]
    db.add_all(people)
    db.flush()
    return people


def add_event(db, delivery: Delivery, kind: str, at: datetime, key: str, **extra) -> None:
    db.add(DeliveryEventRecord(event_key=key, kind=kind, recipient=delivery.email,
                               occurred_at=at, delivery_id=delivery.id, raw="{}", **extra))


def build_ledger(engine) -> None:
    """Issue 644 (campaign with bounces, a complaint, unsubscribes) and a clean issue 643.

    Issue 644, 40 recipients:
      rows 0-35 sent (20 in minute 10:00, 16 in minute 10:02), 36-37 failed, 38 unknown,
      39 skipped; delivered: rows 0-29; hard bounces rows 30, 31 (same diagnostic); soft bounce
      row 32; complaint row 0 (also delivered); unsubscribed after the start: rows 1 and 2;
      row 3 unsubscribed before the start (does not count), so did a non-recipient after it.
    Issue 643, 10 recipients: all sent and delivered.
    """
    from mailer.store.db import session

    with session(engine) as db:
        readers = add_subscribers(db, 40, DOMAINS_644, "r")
        c644 = Campaign(issue_number=644, subject="This Week in Rust 644", transport="ses",
                        content_sha256="a" * 64, created_at=after_start(-5), started_at=START_644,
                        finished_at=after_start(3))
        c643 = Campaign(issue_number=643, subject="This Week in Rust 643", transport="ses",
                        content_sha256="b" * 64, created_at=START_643, started_at=START_643,
                        finished_at=START_643 + timedelta(minutes=1), status="finished")
        db.add_all([c644, c643])
        db.flush()
        rows = []
        for i, reader in enumerate(readers):
            row = Delivery(campaign_id=c644.id, subscriber_id=reader.id, email=reader.email)
            if i < 36:
                row.status = DeliveryStatus.SENT
                row.sent_at = after_start(i * 0.02) if i < 20 else after_start(2 + (i - 20) * 0.02)
                row.provider_message_id = f"msg-644-{i}"
            else:
                row.status = {36: DeliveryStatus.FAILED, 37: DeliveryStatus.FAILED,
                              38: DeliveryStatus.UNKNOWN, 39: DeliveryStatus.SKIPPED}[i]
            if i < 30:
                row.delivered_at = after_start(5)
            rows.append(row)
        db.add_all(rows)
        db.flush()
        for i in (30, 31):
            rows[i].bounce_type, rows[i].bounced_at = "permanent", after_start(6)
            add_event(db, rows[i], "bounce", after_start(6), f"b{i}", bounce_type="permanent",
                   bounce_subtype="General", diagnostic=HARD_BOUNCE)
        rows[32].bounce_type, rows[32].bounced_at = "transient", after_start(7)
        add_event(db, rows[32], "bounce", after_start(7), "b32", bounce_type="transient",
               bounce_subtype="MailboxFull", diagnostic=SOFT_BOUNCE)
        rows[0].complained_at = after_start(30)
        add_event(db, rows[0], "complaint", after_start(30), "c0", diagnostic="abuse")
        for i, at in ((1, after_start(30)), (2, after_start(60 * 24)), (3, after_start(-60))):
            db.add(SubscriberChange(subscriber_id=readers[i].id, at=at,
                                    from_status=SubscriberStatus.ACTIVE,
                                    to_status=SubscriberStatus.UNSUBSCRIBED, source="one-click"))
        outsider = Subscriber(email="late@example.org", status=SubscriberStatus.UNSUBSCRIBED,
                              created_at=after_start(-600))
        db.add(outsider)
        db.flush()
        db.add(SubscriberChange(subscriber_id=outsider.id, at=after_start(20),
                                to_status=SubscriberStatus.UNSUBSCRIBED, source="web"))
        old_readers = add_subscribers(db, 10, ["old.example"] * 10, "o")
        db.add_all([
            Delivery(campaign_id=c643.id, subscriber_id=r.id, email=r.email,
                     status=DeliveryStatus.SENT, sent_at=START_643 + timedelta(seconds=5),
                     delivered_at=START_643 + timedelta(minutes=2))
            for r in old_readers
        ])
        db.commit()
