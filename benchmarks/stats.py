"""Delivery stats over a 100,000-delivery campaign on SQLite: seconds per query and the ratio
against the naive way, in the same run.

The baseline loads every delivery row of the campaign as an ORM object and counts in Python.
`mailer stats` aggregates in SQL (GROUP BY) instead. Run:

    .venv/bin/python benchmarks/stats.py [ROWS] [DATABASE_URL]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlmodel import Session, select

from mailer.domain import utcnow
from mailer.store.db import get_engine, reset_engines
from mailer.store.models import Campaign, Delivery, DeliveryEventRecord, Subscriber
from mailer.store.stats import campaign_stats, issue_detail


def build(url: str, rows: int) -> None:
    engine = get_engine(url)
    now = utcnow()
    with Session(engine) as db:
        db.execute(insert(Subscriber), [
            {"email": f"reader{n}@d{n % 500}.example", "status": "active", "created_at": now,
             "updated_at": now} for n in range(rows)])
        campaign = Campaign(issue_number=644, subject="TWiR 644", transport="ses",
                            content_sha256="0" * 64, started_at=now)
        db.add(campaign)
        db.commit()
        subscribers = db.exec(select(Subscriber.id, Subscriber.email)).all()
        db.execute(insert(Delivery), [{
            "campaign_id": campaign.id, "subscriber_id": sid, "email": email,
            "status": "sent" if sid % 100 else "failed",
            "sent_at": now + timedelta(seconds=sid / 14), "provider_message_id": f"m{sid}",
            "delivered_at": now if sid % 50 else None,
            "bounced_at": None if sid % 50 else now,
            "bounce_type": None if sid % 50 else ("permanent" if sid % 100 else "transient"),
            "complained_at": None if sid % 1000 else now,
        } for sid, email in subscribers])
        bounced = db.exec(select(Delivery.id, Delivery.email)
                          .where(Delivery.bounced_at.is_not(None))).all()
        db.execute(insert(DeliveryEventRecord), [{
            "event_key": f"b{did}", "kind": "bounce", "recipient": email, "occurred_at": now,
            "delivery_id": did, "bounce_type": "permanent", "bounce_subtype": "General",
            "diagnostic": f"smtp; 550 5.1.{did % 7} unknown", "raw": "{}"}
            for did, email in bounced])
        db.commit()
        db.execute(text("ANALYZE"))


def naive(url: str) -> dict[str, int]:
    engine = get_engine(url)
    with Session(engine) as db:
        rows = db.exec(select(Delivery).where(Delivery.campaign_id == 1)).all()
    counts = {"recipients": 0, "sent": 0, "delivered": 0, "bounced": 0, "complained": 0}
    for row in rows:
        counts["recipients"] += 1
        counts["sent"] += row.status == "sent"
        counts["delivered"] += row.delivered_at is not None
        counts["bounced"] += row.bounced_at is not None
        counts["complained"] += row.complained_at is not None
    return counts


def timed(label: str, function, repeat: int = 3) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<42} {best * 1000:9.1f} ms")
    return best


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{Path(folder) / 'stats.db'}"
        started = time.perf_counter()
        build(url, rows)
        print(f"built {rows:,} deliveries in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})")
        engine = get_engine(url)

        def overview() -> None:
            with Session(engine) as db:
                campaign_stats(db)

        def detail() -> None:
            with Session(engine) as db:
                issue_detail(db, 644)

        baseline = timed("baseline: load rows, count in Python", lambda: naive(url))
        sql = timed("mailer stats (per-campaign, GROUP BY)", overview)
        full = timed("mailer stats --issue (all breakdowns)", detail)
        print(f"per-campaign figures: {baseline / sql:.1f}x faster than the baseline")
        print(f"full issue detail:    {baseline / full:.1f}x faster than the baseline")
        reset_engines()


if __name__ == "__main__":
    main()
