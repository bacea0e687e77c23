"""The figures kept as counters (issue 23 §1) against counting the rows, in one run.

Builds the database of ``benchmarks/stats.py`` (READERS readers, 100,000 by default, each sent
ISSUES issues, 5 by default) and prints, best of three:

- ``mailer stats --json``'s document, ``stats --subscribers`` and ``subscribers count`` read
  from the counters, against the same figures counted from the rows by the queries
  ``mailer db recount`` keeps (``counted_*``), with the ratio;
- the same commands as processes (start included), reading the counters;
- ``mailer db recount`` itself;
- what the triggers cost a write: queueing a campaign of every reader (one INSERT … SELECT,
  as ``mailer send`` starts one) with the triggers, against the same with them dropped.

    .venv/bin/python benchmarks/counters.py [READERS] [ISSUES] [DATABASE_URL]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stats import build_issues, build_readers, timed

from mailer.domain import utcnow
from mailer.reads.list_health import list_weeks, overview_document, overview_from
from mailer.reads.counters import recount
from mailer.store.db import get_engine, reset_engines
from mailer.reads.delivery_figures import campaign_stats, counted_campaign_stats
from mailer.reads.subscriber_figures import (
    counted_subscriber_growth,
    counted_subscribers_by_status,
    subscriber_growth,
    subscribers_by_status,
)

MAILER = str(Path(sys.executable).with_name("mailer"))


def row(label: str, counters: float, rows: float | None = None) -> None:
    ratio = f"{rows / counters:8.1f}x" if rows is not None else ""
    base = f"{rows * 1000:9.1f} ms" if rows is not None else " " * 12
    print(f"{label:<44} {counters * 1000:9.1f} ms {base} {ratio}")


def process(url: str, *args: str):
    def run() -> None:
        result = subprocess.run([MAILER, *args], capture_output=True, text=True,
                                env={**os.environ, "MAILER_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
    return run


def queue_everyone(url: str, issue: int) -> float:
    """A campaign with every reader queued, as ledger._enqueue_audience does it."""
    engine = get_engine(url)
    with engine.begin() as connection:
        campaign = connection.execute(text(
            "INSERT INTO campaign (issue_number, subject, status, transport, content_sha256, "
            "created_at, started_at) VALUES (:n, 'x', 'sending', 'ses', :sha, :at, :at) "
            "RETURNING id"), {"n": issue, "sha": "0" * 64, "at": utcnow()}).scalar()
    start = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO delivery (campaign_id, subscriber_id, email, status, attempts) "
            "SELECT :c, id, email, 'queued', 0 FROM subscriber WHERE status = 'active'"),
            {"c": campaign})
    return time.perf_counter() - start


def main() -> None:
    readers = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    issues = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as folder:
        url = sys.argv[3] if len(sys.argv) > 3 else f"sqlite:///{Path(folder) / 'counters.db'}"
        started = time.perf_counter()
        engine = get_engine(url)
        now = utcnow()
        with Session(engine) as db:
            build_readers(db, readers, now)
            latest = build_issues(db, issues, now)
            db.execute(text("ANALYZE"))
            db.commit()
        print(f"built {readers:,} readers and {readers * issues:,} deliveries in "
              f"{time.perf_counter() - started:.0f} s ({url.split(':')[0]}), counters kept "
              "by the triggers while building")
        with Session(engine) as db:
            assert recount(db) == [], "the counters kept while building differ from the rows"
            db.rollback()
        print(f"{'':<44} {'counters':>12} {'rows':>12} {'ratio':>9}")

        def with_session(function):
            def run() -> None:
                with Session(engine) as db:
                    function(db)
            return run

        row("stats --json document (overview)",
            timed("c", with_session(overview_document)),
            timed("r", with_session(lambda db: overview_from(
                counted_campaign_stats(db), list_weeks(db), counted_subscribers_by_status(db)))))
        row("  of which: campaigns' figures",
            timed("c", with_session(campaign_stats)),
            timed("r", with_session(counted_campaign_stats)))
        row("stats --subscribers figures",
            timed("c", with_session(lambda db: (subscriber_growth(db, 12),
                                                subscribers_by_status(db)))),
            timed("r", with_session(lambda db: (counted_subscriber_growth(db, 12),
                                                counted_subscribers_by_status(db)))))
        row("subscribers count",
            timed("c", with_session(subscribers_by_status)),
            timed("r", with_session(counted_subscribers_by_status)))
        row("process: mailer stats --json", timed("p", process(url, "stats", "--json")))
        row("process: mailer stats --issue N --json",
            timed("p", process(url, "stats", "--issue", str(latest), "--json")))
        row("process: mailer stats --subscribers", timed("p", process(url, "stats",
                                                                        "--subscribers")))
        row("process: mailer subscribers count --json",
            timed("p", process(url, "subscribers", "count", "--json")))
        row("process: mailer db recount", timed("p", process(url, "db", "recount"), 1))
        with_triggers = queue_everyone(url, 900)
        with engine.begin() as connection:
            for event in ("insert", "update", "delete"):
                connection.execute(text(f"DROP TRIGGER counters_delivery_{event}"
                                        + (" ON delivery" if engine.dialect.name == "postgresql"
                                           else "")))
        without = queue_everyone(url, 901)
        print(f"queue a campaign of every active reader: {with_triggers * 1000:.0f} ms with the "
              f"counter triggers, {without * 1000:.0f} ms without "
              f"({with_triggers / without:.2f}x the cost)")
        reset_engines()


if __name__ == "__main__":
    main()
