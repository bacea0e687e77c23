"""The ledger's write machinery: one writer per SQLite engine, the group committer, and the hot
path every message takes (lease a batch, then one short write per state change).

:mod:`mailer.store.ledger` keeps the campaign's queries and re-exports the hot-path functions
under their old names; this module holds only how rows are written fast and safely.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from mailer.domain import DeliveryStatus, SubscriberStatus, utcnow
from mailer.store.models import Delivery, table_of

D = table_of(Delivery)


@dataclass(frozen=True)
class ClaimedDelivery:
    """One leased row: enough to build and send its message without another query."""

    id: int
    subscriber_id: int
    email: str
    attempts: int


# -- SQLite needs one writer at a time; serialising in-process beats its busy-wait sleeps -------

# Keyed by the engine itself, weakly: a dropped engine (tests make hundreds) takes its lock and
# its group committer with it, and a new engine at a reused address never meets a stale one.
_SQLITE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _write_lock(engine: Engine):
    if not is_sqlite(engine):
        return nullcontext()
    with _LOCKS_GUARD:
        return _SQLITE_WRITE_LOCKS.setdefault(engine, threading.Lock())


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction for a write (one writer at a time per SQLite engine in this process)."""
    with _write_lock(engine), engine.begin() as connection:
        yield connection


class GroupCommit:
    """Group commit for the per-message writes of many sender threads.

    Each caller queues its statement and waits until it is committed, exactly as if it had
    committed alone, so a row is ``sending`` in the database before its transport call and
    ``sent`` before its thread moves on: the crash guarantees do not change. But whichever
    waiting thread gets the lock first commits everybody's pending statements in one
    transaction. With 16 threads that is up to 16 rows per commit instead of one, and no
    convoy of threads queueing on SQLite's single writer.
    """

    def __init__(self, engine: Engine) -> None:
        # Weakly: the committer is the engine's cache entry, and must not keep its key alive.
        self._engine = weakref.ref(engine)
        self._pending: list[_Write] = []
        self._pending_lock = threading.Lock()
        self._leader = threading.Lock()

    def run(self, statement: Callable[[Any], Any]) -> Any:
        """Run ``statement(cursor)`` (a DB-API cursor: these writes are hot enough that
        SQLAlchemy's per-statement work shows) in the next group commit; return its result."""
        write = _Write(statement)
        with self._pending_lock:
            self._pending.append(write)
        with self._leader:
            if not write.done:
                self._commit_pending()
        if write.error is not None:
            raise write.error
        return write.result

    def _commit_pending(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        try:
            engine = self._engine()
            assert engine is not None  # the caller of run() holds it
            with writing(engine) as connection:
                cursor = connection.connection.cursor()
                try:
                    for write in batch:
                        write.result = write.statement(cursor)
                finally:
                    cursor.close()
        except Exception as error:  # the transaction is gone for every write in it
            for write in batch:
                write.error = error
        finally:
            for write in batch:
                write.done = True


@dataclass
class _Write:
    statement: Callable[[Any], Any]
    result: Any = None
    error: Exception | None = None
    done: bool = False


_GROUPS: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()


def group_commit(engine: Engine) -> GroupCommit:
    """The engine's one group committer (made on first use)."""
    group = _GROUPS.get(engine)
    if group is None:  # the lock only for the first write: every message comes through here
        with _LOCKS_GUARD:
            group = _GROUPS.get(engine)
            if group is None:
                group = _GROUPS[engine] = GroupCommit(engine)
    return group


# -- the hot path: claim, then one short write per state change ---------------------------------

def claim_batch(engine: Engine, campaign_id: int, worker_id: str, limit: int, *,
                canary_only: bool = False) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` unleased queued rows (of the canary sample only, if asked), lowest
    id first."""
    if limit <= 0:
        return []
    candidates = (
        select(D.c.id)
        .where(D.c.campaign_id == campaign_id, D.c.status == DeliveryStatus.QUEUED.value,
               D.c.claimed_by.is_(None), *([D.c.canary.is_(True)] if canary_only else []))
        .order_by(D.c.id)
        .limit(limit)
    )
    if not is_sqlite(engine):
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(D)
        .where(D.c.id.in_(candidates.scalar_subquery()))
        .values(claimed_by=worker_id, claimed_at=utcnow())
        .returning(D.c.id, D.c.subscriber_id, D.c.email, D.c.attempts)
    )
    with writing(engine) as connection:
        rows = connection.execute(statement).all()
    return sorted((ClaimedDelivery(*row) for row in rows), key=lambda claimed: claimed.id)


# The two writes every message makes run as plain driver SQL: SQLAlchemy's statement machinery
# costs ~200 us each, as much as boto3's own work per message, and they run at the send rate.
_QUEUED, _SENDING = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value
_SENT, _SKIPPED = DeliveryStatus.SENT.value, DeliveryStatus.SKIPPED.value
_ACTIVE = SubscriberStatus.ACTIVE.value
_HOT_SQL = {  # the status literals come from the enums, as in every other query
    # claimed_at becomes the moment of the request: settling an unknown row compares it with
    # the requests of other rows (mailer.store.ledger.settle_unknown).
    "start": f"UPDATE delivery SET status = '{_SENDING}', attempts = attempts + 1, "
             f"claimed_at = {{at}} WHERE id = {{id}} AND claimed_by = {{worker}} "
             f"AND status = '{_QUEUED}' AND EXISTS (SELECT 1 FROM subscriber "
             f"WHERE subscriber.id = delivery.subscriber_id AND subscriber.status = '{_ACTIVE}')",
    "skip": f"UPDATE delivery SET status = '{_SKIPPED}', error = COALESCE("
            "(SELECT 'subscriber is ' || subscriber.status FROM subscriber "
            "WHERE subscriber.id = delivery.subscriber_id), 'subscriber was deleted') "
            f"WHERE id = {{id}} AND claimed_by = {{worker}} AND status = '{_QUEUED}'",
    "sent": f"UPDATE delivery SET status = '{_SENT}', sent_at = {{sent_at}}, "
            "provider_message_id = {provider_id}, error = NULL "
            f"WHERE id = {{id}} AND claimed_by = {{worker}} AND status = '{_SENDING}'",
    "finish": "UPDATE delivery SET status = {status}, error = {error} "
              f"WHERE id = {{id}} AND claimed_by = {{worker}} AND status = '{_SENDING}'",
}
_HOT_CACHE: dict[tuple[str, str], str] = {}


def _hot(engine: Engine, name: str) -> str:
    """``name``'s SQL in the driver's own placeholder style (sqlite3 :x, psycopg %(x)s)."""
    key = (engine.dialect.name, name)
    sql = _HOT_CACHE.get(key)
    if sql is None:
        style = ":{}" if is_sqlite(engine) else "%({})s"
        names = ("id", "worker", "sent_at", "provider_id", "status", "error", "at")
        sql = _HOT_SQL[name].format(**{n: style.format(n) for n in names})
        _HOT_CACHE[key] = sql
    return sql


_TIME_BINDERS: dict[str, Callable] = {}


def _bind_time(engine: Engine) -> Callable:
    """The timestamp column's own conversion to the driver's format (cached: building it costs
    more than the UPDATE)."""
    binder = _TIME_BINDERS.get(engine.dialect.name)
    if binder is None:
        processor = D.c.sent_at.type.bind_processor(engine.dialect)
        binder = processor if processor else (lambda value: value)
        _TIME_BINDERS[engine.dialect.name] = binder
    return binder


def start_sending(engine: Engine, delivery_id: int, worker_id: str) -> DeliveryStatus | None:
    """Move a leased row to ``sending`` right before its transport call, re-checking the
    reader in the same statement. Returns SENDING (go), SKIPPED (the reader left: marked so) or
    None (the lease is no longer ours: do not send)."""
    params = {"id": delivery_id, "worker": worker_id, "at": _bind_time(engine)(utcnow())}
    start_sql, skip_sql = _hot(engine, "start"), _hot(engine, "skip")

    def statement(cursor: Any) -> DeliveryStatus | None:
        cursor.execute(start_sql, params)
        if cursor.rowcount:
            return DeliveryStatus.SENDING
        cursor.execute(skip_sql, params)
        return DeliveryStatus.SKIPPED if cursor.rowcount else None

    return group_commit(engine).run(statement)


def start_sending_many(engine: Engine, delivery_ids: list[int],
                       worker_id: str) -> list[DeliveryStatus | None]:
    """:func:`start_sending` for a batch of rows in one transaction (one commit, not one per
    row): each row is claimed, or skipped, on its own, exactly as one by one."""
    at = _bind_time(engine)(utcnow())
    start_sql, skip_sql = _hot(engine, "start"), _hot(engine, "skip")

    def statement(cursor: Any) -> list[DeliveryStatus | None]:
        outcome: list[DeliveryStatus | None] = []
        for delivery_id in delivery_ids:
            params = {"id": delivery_id, "worker": worker_id, "at": at}
            cursor.execute(start_sql, params)
            if cursor.rowcount:
                outcome.append(DeliveryStatus.SENDING)
                continue
            cursor.execute(skip_sql, params)
            outcome.append(DeliveryStatus.SKIPPED if cursor.rowcount else None)
        return outcome

    return group_commit(engine).run(statement)


def mark_sent_many(engine: Engine, worker_id: str,
                   sent: list[tuple[int, str]]) -> list[bool]:
    """:func:`mark_sent` for ``(delivery id, provider message id)`` pairs in one transaction."""
    sql = _hot(engine, "sent")
    sent_at = _bind_time(engine)(utcnow())

    def statement(cursor: Any) -> list[bool]:
        outcome = []
        for delivery_id, provider_id in sent:
            cursor.execute(sql, {"id": delivery_id, "worker": worker_id, "sent_at": sent_at,
                                 "provider_id": provider_id[:255]})
            outcome.append(bool(cursor.rowcount))
        return outcome

    return group_commit(engine).run(statement)


def mark_sent(engine: Engine, delivery_id: int, worker_id: str, provider_message_id: str) -> bool:
    params = {"id": delivery_id, "worker": worker_id,
              "sent_at": _bind_time(engine)(utcnow()), "provider_id": provider_message_id[:255]}
    return _run_hot(engine, "sent", params)


def mark_failed(engine: Engine, delivery_id: int, worker_id: str, reason: str) -> bool:
    return _finish_row(engine, delivery_id, worker_id, DeliveryStatus.FAILED, reason)


def mark_retry(engine: Engine, delivery_id: int, worker_id: str, reason: str) -> bool:
    """Not sent (a throttle or a temporary failure): back to queued, still leased by us, so a
    crash during the backoff loses nothing and sends nothing twice."""
    return _finish_row(engine, delivery_id, worker_id, DeliveryStatus.QUEUED, reason)


def mark_failed_held(engine: Engine, delivery_id: int, worker_id: str, reason: str) -> bool:
    """Fail a row held back in the queue, still leased by us: it ran out of temporary tries and
    waited there until the provider was seen taking other messages (not an outage, then)."""
    statement = (update(D).where(D.c.id == delivery_id, D.c.claimed_by == worker_id,
                                 D.c.status == DeliveryStatus.QUEUED.value)
                 .values(status=DeliveryStatus.FAILED.value, error=reason[:2000]))
    with writing(engine) as connection:
        return bool(connection.execute(statement).rowcount)


def mark_unknown(engine: Engine, delivery_id: int, worker_id: str, reason: str) -> bool:
    return _finish_row(engine, delivery_id, worker_id, DeliveryStatus.UNKNOWN, reason)


def _finish_row(engine: Engine, delivery_id: int, worker_id: str, status: DeliveryStatus,
                error: str) -> bool:
    params = {"id": delivery_id, "worker": worker_id, "status": status.value,
              "error": error[:2000]}
    return _run_hot(engine, "finish", params)


def _run_hot(engine: Engine, name: str, params: dict) -> bool:
    sql = _hot(engine, name)

    def statement(cursor: Any) -> bool:
        cursor.execute(sql, params)
        return bool(cursor.rowcount)

    return group_commit(engine).run(statement)
