"""Seeded data for the operator console's tests: build_ledger's issues 643 and 644, ten older
issues for the trends, a stopped campaign with rows in doubt, readers in every state (one
suppressed for soft bounces only), sign-ups through the form over several weeks, and events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mailer.domain import DeliveryStatus, SubscriberStatus
from mailer.store.models import Campaign, Delivery, DeliveryEventRecord, Subscriber, SubscriberChange
from tests.stats_ledger import START_643, build_ledger

SOFT = "soft@example.com"
HARD = "hard@example.com"
ANGRY = "angry@example.com"
STOP_REASON = "SES paused the account: sending quota exceeded"
BREAKER_REASON = "hard bounces 30 of 600 sent = 5.00 %, at or above 2.50 %"
RAW_BOUNCE = {"eventType": "Bounce", "bounce": {"bounceType": "Transient",
                                                 "bouncedRecipients": [{"emailAddress": SOFT}]}}


def _reader(db, email: str, status: SubscriberStatus, created: datetime, **extra) -> Subscriber:
    reader = Subscriber(email=email, status=status, created_at=created, updated_at=created,
                        **extra)
    db.add(reader)
    db.flush()
    db.add(SubscriberChange(subscriber_id=reader.id, at=created, to_status=status,
                            source=extra.get("source") or "cli"))
    return reader


def _older_issues(db, readers: list[Subscriber]) -> list[Campaign]:
    """Issues 633-642, one a week before 643, 10 recipients each; issue 640 bounces a lot."""
    campaigns = []
    for n, number in enumerate(range(633, 643)):
        start = START_643 - timedelta(weeks=10 - n)
        campaign = Campaign(issue_number=number, subject=f"This Week in Rust {number}",
                            transport="ses", content_sha256="c" * 64, created_at=start,
                            started_at=start, finished_at=start + timedelta(minutes=2),
                            status="finished")
        db.add(campaign)
        db.flush()
        bounces = 3 if number == 640 else number % 2
        for i, reader in enumerate(readers):
            db.add(Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=reader.email,
                            status=DeliveryStatus.SENT, sent_at=start + timedelta(seconds=i),
                            delivered_at=None if i < bounces else start + timedelta(minutes=1),
                            bounced_at=start + timedelta(minutes=1) if i < bounces else None,
                            bounce_type="permanent" if i < bounces else None))
        campaigns.append(campaign)
    return campaigns


def _soft_bounced(db, campaigns: list[Campaign]) -> None:
    created = START_643 - timedelta(weeks=20)
    soft = _reader(db, SOFT, SubscriberStatus.ACTIVE, created, confirmed_at=created,
                   source="web", signup_ip="192.0.2.7", confirm_ip="192.0.2.8")
    for i, campaign in enumerate(campaigns[-3:]):
        at = campaign.started_at + timedelta(minutes=5)
        row = Delivery(campaign_id=campaign.id, subscriber_id=soft.id, email=SOFT,
                       status=DeliveryStatus.SENT, sent_at=campaign.started_at,
                       bounced_at=at, bounce_type="transient", provider_message_id=f"soft-{i}")
        db.add(row)
        db.flush()
        db.add(DeliveryEventRecord(event_key=f"soft-{i}", kind="bounce", recipient=SOFT,
                                   occurred_at=at, delivery_id=row.id, bounce_type="transient",
                                   bounce_subtype="MailboxFull", diagnostic="452 mailbox full",
                                   raw=json.dumps(RAW_BOUNCE)))
    soft.status = SubscriberStatus.BOUNCED
    db.add(SubscriberChange(subscriber_id=soft.id, at=campaigns[-1].started_at + timedelta(hours=1),
                            from_status=SubscriberStatus.ACTIVE,
                            to_status=SubscriberStatus.BOUNCED, source="ses-bounce",
                            detail=json.dumps({"reason": "3 of the last 5 sends bounced"})))


def _suppressed(db, campaign: Campaign) -> None:
    created = START_643 - timedelta(weeks=15)
    hard = _reader(db, HARD, SubscriberStatus.BOUNCED, created, confirmed_at=created)
    angry = _reader(db, ANGRY, SubscriberStatus.COMPLAINED, created, confirmed_at=created)
    db.add(Delivery(campaign_id=campaign.id, subscriber_id=hard.id, email=HARD,
                    status=DeliveryStatus.SENT, sent_at=campaign.started_at,
                    bounced_at=campaign.started_at, bounce_type="permanent"))
    db.add(Delivery(campaign_id=campaign.id, subscriber_id=angry.id, email=ANGRY,
                    status=DeliveryStatus.SENT, sent_at=campaign.started_at,
                    complained_at=campaign.started_at))


def _signups(db, now: datetime) -> None:
    """Twelve sign-ups through the form over the last three weeks; eight confirmed."""
    for i in range(12):
        created = now - timedelta(days=1 + i * 1.5)
        confirmed = created + timedelta(hours=1) if i % 3 else None
        reader = _reader(db, f"signup{i}@example.org", SubscriberStatus.PENDING, created,
                         source="web", signup_ip=f"198.51.100.{i}")
        if confirmed:
            reader.status, reader.confirmed_at = SubscriberStatus.ACTIVE, confirmed
            db.add(SubscriberChange(subscriber_id=reader.id, at=confirmed,
                                    from_status=SubscriberStatus.PENDING,
                                    to_status=SubscriberStatus.ACTIVE, source="web"))


def _stopped_campaign(db, readers: list[Subscriber], now: datetime) -> None:
    campaign = Campaign(issue_number=645, subject="This Week in Rust 645", transport="ses",
                        content_sha256="d" * 64, created_at=now - timedelta(hours=3),
                        started_at=now - timedelta(hours=3), status="stopped", note=STOP_REASON)
    db.add(campaign)
    db.flush()
    for i, reader in enumerate(readers[:6]):
        status = (DeliveryStatus.SENT if i < 3 else DeliveryStatus.UNKNOWN if i == 3
                  else DeliveryStatus.QUEUED)
        db.add(Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=reader.email,
                        status=status, sent_at=campaign.started_at if i < 3 else None))


def build_console_data(engine, now: datetime | None = None) -> None:
    from sqlmodel import select

    from mailer.store.db import session

    now = now or datetime.now(UTC)
    build_ledger(engine)
    with session(engine) as db:
        old = list(db.exec(select(Subscriber).where(Subscriber.email.like("o%@old.example"))))
        campaigns = _older_issues(db, old)
        _soft_bounced(db, campaigns)
        _suppressed(db, campaigns[-1])
        _signups(db, now)
        _stopped_campaign(db, old, now)
        db.commit()


def add_running_campaign(engine, issue_number: int = 646, recipients: int = 30) -> int:
    """A send in progress: nothing sent yet, every row queued. Returns the campaign id."""
    from sqlmodel import select

    from mailer.store.db import session

    now = datetime.now(UTC)
    with session(engine) as db:
        readers = list(db.exec(select(Subscriber).where(
            Subscriber.status == SubscriberStatus.ACTIVE).limit(recipients)))
        campaign = Campaign(issue_number=issue_number, subject=f"This Week in Rust {issue_number}",
                            transport="ses", content_sha256="e" * 64, created_at=now,
                            started_at=now, status="sending")
        db.add(campaign)
        db.flush()
        for reader in readers:
            db.add(Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=reader.email))
        db.commit()
        return campaign.id


def add_paused_campaign(engine, issue_number: int = 647) -> None:
    """A send the reputation breaker paused, with the figures it paused on."""
    from mailer.store.db import session

    with session(engine) as db:
        db.add(Campaign(issue_number=issue_number, subject=f"This Week in Rust {issue_number}",
                        transport="ses", content_sha256="f" * 64, started_at=START_643,
                        status="paused", pause_reason=BREAKER_REASON,
                        paused_at=START_643 + timedelta(hours=1),
                        note=f"paused by the reputation breaker: {BREAKER_REASON}",
                        breaker_sent=600, breaker_delivered=570, breaker_hard_bounces=30,
                        breaker_complaints=0))
        db.commit()
