"""Ledger helpers for tests that drive `mailer.store.ledger` directly: start a campaign, read
its rows, change a reader's status behind the ledger's back, claim from four connections."""

from __future__ import annotations

import threading

from sqlalchemy import select, update

from mailer.domain import SubscriberStatus
from mailer.store import ledger
from mailer.store.db import make_engine
from mailer.store.models import Delivery, Subscriber


def set_status(engine, subscriber_id: int, status: SubscriberStatus) -> None:
    with engine.begin() as connection:
        connection.execute(update(Subscriber.__table__)
                           .where(Subscriber.__table__.c.id == subscriber_id)
                           .values(status=status.value))


def start(engine, issue: int = 644, **kwargs) -> ledger.CampaignStart:
    return ledger.begin_campaign(engine, issue_number=issue, subject="TWiR 644",
                                 transport="outbox", content_sha256="0" * 64, **kwargs)


def rows(engine, campaign_id: int) -> list[Delivery]:
    with engine.connect() as connection:
        found = connection.execute(select(Delivery.__table__)
                                   .where(Delivery.__table__.c.campaign_id == campaign_id)
                                   .order_by(Delivery.__table__.c.id)).mappings().all()
    return [Delivery.model_validate(dict(row)) for row in found]


def claim_from_four_connections(url: str, campaign_id: int, batch: int) -> dict[int, list[int]]:
    """Four threads, each with its own engine (as another process would have), claim until the
    campaign is drained; returns the row ids each one got. Shared with the PostgreSQL test."""
    results: dict[int, list[int]] = {}

    def claim_all(n: int) -> None:
        own = make_engine(url)
        got = results.setdefault(n, [])
        while claimed := ledger.claim_batch(own, campaign_id, f"worker-{n}", batch):
            got.extend(row.id for row in claimed)
        own.dispose()

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
