"""What keeping the counters costs a PostgreSQL write, per row, as one transaction grows (issue 23).

Migration 0014's row-level triggers update one counter row per written row; in one transaction
each update leaves a dead version of that row that the next one walks past, so the cost per row
grows with the transaction. 0016 replaces them on PostgreSQL with statement-level triggers. This
measures both in one run: two databases of its own on the server, one at 0015 (the row
triggers) and one at the head, and the same writes in each, N rows in one transaction:

- ``send start``: one INSERT … SELECT of 2N delivery rows (``ledger.begin_campaign``);
- ``rows marked sent``: N single-row UPDATEs (the send hot path's statements, one transaction),
  and ``sent, 16 a commit``: the same committed every 16 rows (the hot path's group commit);
- ``import``: N subscribers in multi-row INSERTs of 500 and their N history rows
  (``subscriber_files.insert_rows``, the import's writer);

against the baseline: the same writes with the counters' triggers disabled in that transaction
(``ALTER TABLE … DISABLE TRIGGER USER``; the foreign keys' checks still run).

    .venv/bin/python benchmarks/counter_writes.py [SIZES] [DATABASE_URL] [ROW_TRIGGER_MAX]

SIZES is a comma list (default 5000,20000,100000); the URL a server's (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres). The row triggers are measured up to
ROW_TRIGGER_MAX rows (default 20000: beyond, one write takes minutes), the single-row UPDATEs
up to 20,000 (mailer's own transactions of them are group commits of tens of rows). The two
databases are dropped at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mailer.domain import utcnow
from mailer.store.db import head_revision, make_engine, upgrade
from mailer.store.models import Subscriber, SubscriberChange
from mailer.store.subscriber_files import insert_rows
from scale import fresh_postgres_database  # benchmarks/ is on the path of a script run from it

PREFIX = "mailer_counter_writes"
BATCH = 500


def drop_database(base: str, name: str) -> None:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def import_rows(connection: Connection, n: int, serial: int) -> None:
    """N readers and their history through the import's own writer, in batches of 500."""
    now = utcnow()
    with Session(bind=connection) as db:
        for start in range(0, n, BATCH):
            rows = [{"email": f"w{serial}r{i}@example.org", "status": "active", "source": "import",
                     "created_at": now, "updated_at": now, "confirmed_at": now}
                    for i in range(start, min(n, start + BATCH))]
            inserted = insert_rows(db, Subscriber.__table__, rows, ignore_conflicts=True,
                                   returning=("id", "email"))
            insert_rows(db, SubscriberChange.__table__, [
                {"subscriber_id": sid, "at": now, "from_status": None, "to_status": "active",
                 "source": "import"} for sid, _email in inserted])


def send_start(connection: Connection, n: int, serial: int) -> int:
    """A campaign of 2N rows queued in one INSERT … SELECT (both sent-row writes take N)."""
    campaign = connection.execute(text(
        "INSERT INTO campaign (issue_number, subject, transport, content_sha256, status, "
        "created_at, started_at) VALUES (:n, 's', 'outbox', :sha, 'sending', :at, :at) "
        "RETURNING id"), {"n": 9000 + serial, "sha": "0" * 64, "at": utcnow()}).scalar_one()
    connection.execute(text(
        "INSERT INTO delivery (campaign_id, subscriber_id, email, status, attempts) "
        "SELECT :c, id, email, 'queued', 0 FROM subscriber ORDER BY id LIMIT :n"),
        {"c": campaign, "n": 2 * n})
    return 2 * n


COUNTED_TABLES = ("subscriber", "subscriber_change", "delivery", "campaign")


def marked_sent(connection: Connection, n: int, _serial: int, per_commit: int = 0) -> None:
    """N single-row UPDATEs of a queued campaign's rows, as the send hot path writes them
    (a commit every ``per_commit`` rows when given): with the triggers, the newest campaign
    that has its counters (queued with them)."""
    counted = connection.execute(text(
        "SELECT bool_and(tgenabled <> 'D') FROM pg_trigger WHERE tgname LIKE 'counters_%'")).scalar()
    newest = ("SELECT max(campaign_id) FROM campaign_counts WHERE queued >= :n" if counted else
              "SELECT max(campaign_id) FROM delivery WHERE status = 'queued'")
    ids = connection.execute(text(
        f"SELECT id FROM delivery WHERE campaign_id = ({newest}) "
        "AND status = 'queued' ORDER BY id LIMIT :n"), {"n": n}).scalars().all()
    assert len(ids) == n, (len(ids), n)
    cursor = connection.connection.cursor()
    sent_at = utcnow() - timedelta(seconds=1)
    for done, delivery_id in enumerate(ids, 1):
        cursor.execute("UPDATE delivery SET status = 'sent', sent_at = %s, "
                       "provider_message_id = %s WHERE id = %s",
                       (sent_at, f"m-{delivery_id}", delivery_id))
        if per_commit and done % per_commit == 0:
            connection.commit()
    cursor.close()


def group_committed(connection: Connection, n: int, serial: int) -> None:
    """The same in transactions of 16 rows, as the group commit of 16 sender threads."""
    marked_sent(connection, n, serial, per_commit=16)


def timed(url: str, write: Callable[[Connection, int, int], int | None], n: int, serial: int,
          triggers: bool) -> float:
    """Seconds per row of one transaction of ``write``; without triggers when asked."""
    engine = make_engine(url)
    with engine.connect() as connection:
        connection.begin()  # the import's Session joins it, and leaves its commit to us
        if not triggers:
            for table in COUNTED_TABLES:
                connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        started = time.perf_counter()
        rows = write(connection, n, serial) or n
        if not triggers:
            for table in COUNTED_TABLES:
                connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        connection.commit()
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds / rows


def main() -> None:
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "5000,20000,100000").split(",")]
    base = sys.argv[2] if len(sys.argv) > 2 else "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    row_trigger_max = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
    schemas = {"0015 row triggers": "0015_reader_search", f"{head_revision()}": "head"}
    urls = {}
    for label, revision in schemas.items():
        name = f"{PREFIX}_{revision}".lower()
        urls[label] = fresh_postgres_database(base, name)
        upgrade(make_engine(urls[label]), revision)
    print("PostgreSQL, µs per row, N rows in one transaction; baseline: the counters' "
          "triggers disabled (ratio = with / without)\n")
    print(f"| {'write':<22} | {'N':>7} | {'schema':<20} | {'triggers':>10} | {'off':>8} | {'ratio':>6} |")
    print(f"|{'-' * 24}|{'-' * 9}|{'-' * 22}|{'-' * 12}|{'-' * 10}|{'-' * 8}|")
    serial = 0
    for n in sizes:
        for label, write in (("import", import_rows), ("send start", send_start),
                             ("rows marked sent", marked_sent),
                             ("sent, 16 a commit", group_committed)):
            if write in (marked_sent, group_committed) and n > 20_000:
                continue
            for schema, url in urls.items():
                if schema.startswith("0015") and n > row_trigger_max:
                    continue
                serial += 1
                on = timed(url, write, n, serial, triggers=True)
                serial += 1
                off = timed(url, write, n, serial, triggers=False)
                print(f"| {label:<22} | {n:>7,} | {schema:<20} | {on * 1e6:>10.1f} | "
                      f"{off * 1e6:>8.1f} | {on / off:>5.1f}x |", flush=True)
    for revision in schemas.values():
        drop_database(base, f"{PREFIX}_{revision}".lower())


if __name__ == "__main__":
    main()
