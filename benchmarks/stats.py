"""Delivery stats and the operator console at scale on SQLite: server time per page, and the
ratio against the naive way measured in the same run.

The database holds READERS readers (200,000 by default) who each got ISSUES issues (5 by
default: 1,000,000 deliveries), a year of sign-ups, confirmations, unsubscribes and bounces in
the subscriber history, and an SES event per bounce and complaint.

The baseline loads every delivery row of one issue as an ORM object and counts in Python.
The console aggregates in SQL. Each page is requested through the app (routing, queries and
templates: the server's whole time), best of three, and compared with the 300 ms aim: the
first request of a server that has counted nothing yet, the same page again, and the page
after new SES events on the newest issue (the day after a send). Run:

    .venv/bin/python benchmarks/stats.py [READERS] [ISSUES] [DATABASE_URL]
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlmodel import Session, select

from mailer.domain import utcnow
from mailer.store.db import get_engine, reset_engines
from mailer.store.models import (
    Campaign,
    Delivery,
    DeliveryEventRecord,
    Subscriber,
    SubscriberChange,
)

AIM_MS = 300
CHUNK = 50_000
PROVIDERS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me"]


def _domain(n: int) -> str:
    return PROVIDERS[n % 5] if n % 10 < 6 else f"d{n % 2000}.example"


def _status(n: int) -> str:
    return "unsubscribed" if n % 40 == 0 else "bounced" if n % 97 == 0 else "active"


def _chunks(rows, size: int = CHUNK):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_readers(db: Session, readers: int, now) -> None:
    """Readers signed up over the last year; a few unsubscribed or bounced since."""
    year = timedelta(days=365)

    def created(n: int):
        return now - year + year * n / readers

    for batch in _chunks({"email": f"reader{n}@{_domain(n)}", "status": _status(n),
                          "created_at": created(n), "updated_at": created(n),
                          "confirmed_at": created(n) + timedelta(hours=1), "source": "web"}
                         for n in range(readers)):
        db.execute(insert(Subscriber), batch)
    ids = db.exec(select(Subscriber.id, Subscriber.status, Subscriber.created_at)).all()
    changes = ({"subscriber_id": sid, "at": at, "to_status": "pending", "source": "web"}
               for sid, _, at in ids)
    changes = [*changes, *({"subscriber_id": sid, "at": at + timedelta(hours=1),
                            "from_status": "pending", "to_status": "active", "source": "web"}
                           for sid, _, at in ids)]
    changes += [{"subscriber_id": sid, "at": at + timedelta(days=20), "from_status": "active",
                 "to_status": status, "source": "one-click"}
                for sid, status, at in ids if status != "active"]
    for batch in _chunks(changes):
        db.execute(insert(SubscriberChange), batch)
    db.commit()


def build_issues(db: Session, issues: int, now) -> int:
    """ISSUES weekly issues to every reader at 14 messages a second; 2 % bounce, 0.05 %
    complain. Returns the newest issue's number."""
    readers = db.exec(select(Subscriber.id, Subscriber.email)).all()
    for k in range(issues):
        number = 600 + k
        start = now - timedelta(weeks=issues - k)
        campaign = Campaign(issue_number=number, subject=f"TWiR {number}", transport="ses",
                            content_sha256="0" * 64, started_at=start, status="finished",
                            finished_at=start + timedelta(hours=4))
        db.add(campaign)
        db.commit()
        for batch in _chunks(_delivery(campaign.id, start, n, sid, email, k)
                             for n, (sid, email) in enumerate(readers)):
            db.execute(insert(Delivery), batch)
        db.commit()
        bounced = db.exec(select(Delivery.id, Delivery.email, Delivery.bounce_type)
                          .where(Delivery.campaign_id == campaign.id,
                                 Delivery.bounced_at.is_not(None))).all()
        db.execute(insert(DeliveryEventRecord), [{
            "event_key": f"b{did}", "kind": "bounce", "recipient": email, "occurred_at": start,
            "delivery_id": did, "bounce_type": kind, "bounce_subtype": "General",
            "diagnostic": f"smtp; 550 5.1.{did % 7} unknown", "raw": '{"eventType": "Bounce"}'}
            for did, email, kind in bounced])
        db.commit()
    return 600 + issues - 1


def _delivery(campaign_id: int, start, n: int, sid: int, email: str, k: int) -> dict:
    bounced = (n + k) % 50 == 0
    return {"campaign_id": campaign_id, "subscriber_id": sid, "email": email,
            "status": "sent" if n % 500 else "failed",
            "sent_at": start + timedelta(seconds=n / 14), "provider_message_id": f"m{k}-{sid}",
            "delivered_at": None if bounced else start,
            "bounced_at": start if bounced else None,
            "bounce_type": ("permanent" if n % 100 else "transient") if bounced else None,
            "complained_at": start if (n + k) % 2000 == 1 else None}


def naive(url: str, issue: int) -> dict[str, int]:
    """The way not to: every row of one issue as an object, counted in Python."""
    engine = get_engine(url)
    with Session(engine) as db:
        campaign = db.exec(select(Campaign.id).where(Campaign.issue_number == issue)).first()
        rows = db.exec(select(Delivery).where(Delivery.campaign_id == campaign)).all()
    counts = {"recipients": 0, "sent": 0, "delivered": 0, "bounced": 0, "complained": 0}
    for row in rows:
        counts["recipients"] += 1
        counts["sent"] += row.status == "sent"
        counts["delivered"] += row.delivered_at is not None
        counts["bounced"] += row.bounced_at is not None
        counts["complained"] += row.complained_at is not None
    return counts


def timed(label: str, function, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def console_client(url: str):
    from fastapi.testclient import TestClient

    from mailer.config import get_settings
    from mailer.web.app import create_app

    os.environ.update({"MAILER_DATABASE_URL": url, "MAILER_ADMIN_USER": "bench",
                       "MAILER_ADMIN_PASSWORD": "bench password",
                       "MAILER_SECRET_KEY": "benchmark-secret-key-0123456789"})
    get_settings.cache_clear()
    return TestClient(create_app(get_settings()))


def page_timer(client):
    auth = {"Authorization": "Basic " + base64.b64encode(b"bench:bench password").decode()}

    def get(path: str, cold: bool = False):
        def request() -> None:
            if cold:  # a server just started: nothing counted yet
                client.app.state.console_cache = None
            response = client.get(path, headers=auth)
            assert response.status_code == 200, (path, response.status_code)
        return request
    return get


def new_events(url: str, issue: int, count: int = 100) -> None:
    """What arrives during the day after a send: bounces on the newest issue."""
    engine = get_engine(url)
    with Session(engine) as db:
        campaign = db.exec(select(Campaign.id).where(Campaign.issue_number == issue)).first()
        rows = db.exec(select(Delivery.id, Delivery.email).where(
            Delivery.campaign_id == campaign, Delivery.bounced_at.is_(None)).limit(count)).all()
        now = utcnow()
        stamp = time.monotonic_ns()
        db.execute(insert(DeliveryEventRecord), [{
            "event_key": f"late{stamp}-{did}", "kind": "bounce", "recipient": email,
            "occurred_at": now, "delivery_id": did, "raw": "{}"} for did, email in rows])
        db.commit()


def report(label: str, seconds: float, baseline: float) -> None:
    verdict = "ok" if seconds * 1000 < AIM_MS else f"over the {AIM_MS} ms aim"
    print(f"{label:<58} {seconds * 1000:8.0f} ms  {baseline / seconds:6.1f}x  {verdict}")


def main() -> None:
    readers = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    issues = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as folder:
        url = sys.argv[3] if len(sys.argv) > 3 else f"sqlite:///{Path(folder) / 'stats.db'}"
        started = time.perf_counter()
        engine = get_engine(url)
        now = utcnow()
        with Session(engine) as db:
            build_readers(db, readers, now)
            latest = build_issues(db, issues, now)
            db.execute(text("ANALYZE"))
            db.commit()
        print(f"built {readers:,} readers and {readers * issues:,} deliveries in "
              f"{time.perf_counter() - started:.0f} s ({url.split(':')[0]})")
        middle = readers // 2
        get = page_timer(console_client(url))
        baseline = timed("baseline", lambda: naive(url, latest))
        print(f"{'baseline: one issue loaded as rows, counted in Python':<58} "
              f"{baseline * 1000:8.0f} ms  (ratios below: baseline / page)")
        counted = [
            ("/admin (overview)", "/admin"),
            ("/admin/stats.json (= mailer stats --json)", "/admin/stats.json"),
            ("/admin/issues/N (issue page)", f"/admin/issues/{latest}"),
        ]
        for label, path in counted:
            report(f"{label}, first request", timed(label, get(path, cold=True), 2), baseline)
            report(f"{label}, again", timed(label, get(path)), baseline)
        for label, path in counted:
            def after_events(path: str = path) -> None:
                new_events(url, latest)
                get(path)()
            report(f"{label}, after 100 new events", timed(label, after_events), baseline)
        pages = [
            ("/admin/issues/N/progress.json (live poll)", f"/admin/issues/{latest}/progress.json"),
            ("/admin/readers (newest, no search)", "/admin/readers"),
            ("/admin/readers?status=bounced (one status)", "/admin/readers?status=bounced"),
            ("/admin/readers?before=ID (an older page)", f"/admin/readers?before={middle}"),
            ("/admin/readers?q=… (search by part)", f"/admin/readers?q=reader{middle}@"),
            ("/admin/readers?q=… (a full address)", f"/admin/readers?q=reader{middle}@"
                                                    f"{_domain(middle)}"),
            ("/admin/readers/ID (one reader)", f"/admin/readers/{middle}"),
            ("/admin/events (latest)", "/admin/events"),
            ("/admin/events?kind=complaint (filtered)", "/admin/events?kind=complaint"),
            ("/admin/events?kind=bounce&before=ID (an older page)",
             f"/admin/events?kind=bounce&before={middle // 10}"),
        ]
        for label, path in pages:
            report(label, timed(label, get(path)), baseline)
        reset_engines()


if __name__ == "__main__":
    main()
