"""The ledger: a campaign per issue send and one delivery row per recipient. Never a cursor.

A row moves ``queued`` → ``sending`` → ``sent`` | ``failed``, or ``queued`` → ``skipped`` when the
reader left before their turn. Crash safety comes from *when* rows move:

- A worker first *leases* a small batch of queued rows (``claimed_by``, ``claimed_at``); the rows
  stay ``queued``, so a crash here loses nothing: a dead worker's leases are simply released.
- A row becomes ``sending`` only right before its transport call and ``sent`` right after it, so
  after a SIGKILL only the rows really in flight (at most the concurrency) are ``sending``; the
  next start turns them into ``unknown`` (maybe sent, maybe not) and reports them.
- Every write checks that the lease is still ours, so a worker that was wrongly declared dead
  (stalled past the heartbeat timeout) cannot send a row someone else has taken over.

SQLite claims with ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING``; PostgreSQL adds
``FOR UPDATE SKIP LOCKED`` so several processes on several machines share one campaign.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    Integer, String, and_, delete, exists, func, insert, literal, or_, select, text,
    true, update,
)
from sqlalchemy.engine import Connection, Engine

from mailer.domain import CampaignStatus, DeliveryStatus, Reputation, SubscriberStatus, utcnow
from mailer.store.models import Campaign, Delivery, SendWorker, Subscriber

D = Delivery.__table__
C = Campaign.__table__
S = Subscriber.__table__
W = SendWorker.__table__

OPEN_STATUSES = (CampaignStatus.SENDING.value, CampaignStatus.STOPPED.value,
                 CampaignStatus.PAUSED.value)
PENDING_STATUSES = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)
DEFAULT_STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class ClaimedDelivery:
    """One leased row: enough to build and send its message without another query."""

    id: int
    subscriber_id: int
    email: str
    attempts: int


@dataclass(frozen=True)
class CampaignStart:
    campaign: Campaign
    created: bool  # False: an open campaign was resumed, or the issue is already finished


@dataclass(frozen=True)
class Recovery:
    """What a start found left behind by workers that died."""

    unknown: int  # rows that were in flight: maybe sent, now `unknown`
    released: int  # leased but untouched rows, back in the queue
    dead_workers: tuple[str, ...]


# -- worker identity ---------------------------------------------------------------------------

def new_worker_id() -> str:
    """host:pid:random — the host and pid let a restart on the same machine see a dead peer at
    once instead of waiting for its heartbeat to go stale."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def worker_is_dead_locally(worker_id: str) -> bool:
    """True when ``worker_id`` names a process on this host that no longer exists."""
    host, _, rest = worker_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


# -- SQLite needs one writer at a time; serialising in-process beats its busy-wait sleeps -------

_SQLITE_WRITE_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _write_lock(engine: Engine):
    if not _is_sqlite(engine):
        return nullcontext()
    with _LOCKS_GUARD:
        return _SQLITE_WRITE_LOCKS.setdefault(id(engine), threading.Lock())


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    with _write_lock(engine), engine.begin() as connection:
        yield connection


class _GroupCommit:
    """Group commit for the per-message writes of many sender threads.

    Each caller queues its statement and waits until it is committed, exactly as if it had
    committed alone, so a row is ``sending`` in the database before its transport call and
    ``sent`` before its thread moves on: the crash guarantees do not change. But whichever
    waiting thread gets the lock first commits everybody's pending statements in one
    transaction. With 16 threads that is up to 16 rows per commit instead of one, and no
    convoy of threads queueing on SQLite's single writer.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
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
            with _writing(self._engine) as connection:
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


_GROUPS: dict[int, _GroupCommit] = {}


def _group(engine: Engine) -> _GroupCommit:
    group = _GROUPS.get(id(engine))
    if group is None or group._engine is not engine:
        with _LOCKS_GUARD:
            group = _GROUPS.get(id(engine))
            if group is None or group._engine is not engine:
                group = _GROUPS[id(engine)] = _GroupCommit(engine)
    return group


# -- campaigns ---------------------------------------------------------------------------------

def get_campaign(engine: Engine, campaign_id: int) -> Campaign | None:
    with engine.connect() as connection:
        row = connection.execute(select(C).where(C.c.id == campaign_id)).mappings().first()
    return Campaign.model_validate(dict(row)) if row else None


def latest_campaign(engine: Engine, issue_number: int) -> Campaign | None:
    with engine.connect() as connection:
        return _latest_campaign(connection, issue_number)


def _latest_campaign(connection: Connection, issue_number: int) -> Campaign | None:
    row = connection.execute(
        select(C).where(C.c.issue_number == issue_number).order_by(C.c.id.desc()).limit(1)
    ).mappings().first()
    return Campaign.model_validate(dict(row)) if row else None


def open_campaigns(engine: Engine) -> list[Campaign]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(C).where(C.c.status == CampaignStatus.SENDING.value).order_by(C.c.id)
        ).mappings().all()
    return [Campaign.model_validate(dict(row)) for row in rows]


def audience_size(engine: Engine) -> int:
    """Readers a new campaign would go to right now."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(S).where(S.c.status == SubscriberStatus.ACTIVE.value)
        ).scalar_one()


def begin_campaign(
    engine: Engine,
    *,
    issue_number: int,
    subject: str,
    transport: str,
    content_sha256: str,
    again: bool = False,
) -> CampaignStart:
    """Resume the issue's open campaign, or create one with its whole audience queued.

    Runs under a per-issue lock so two starts at once (two cron jobs, three workers) end up on
    the same campaign. A finished issue is returned as it is unless ``again`` is true.
    """
    with _writing(engine) as connection:
        _lock_issue(connection, issue_number)
        latest = _latest_campaign(connection, issue_number)
        if latest is not None and latest.status in OPEN_STATUSES:
            return CampaignStart(latest, created=False)
        if latest is not None and not again:
            return CampaignStart(latest, created=False)
        now = utcnow()
        campaign_id = connection.execute(
            insert(C).values(
                issue_number=issue_number, subject=subject, transport=transport,
                content_sha256=content_sha256, status=CampaignStatus.SENDING.value,
                created_at=now, started_at=now,
            ).returning(C.c.id)
        ).scalar_one()
        _enqueue_audience(connection, campaign_id)
        campaign = _latest_campaign(connection, issue_number)
    assert campaign is not None and campaign.id == campaign_id
    return CampaignStart(campaign, created=True)


def _lock_issue(connection: Connection, issue_number: int) -> None:
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(f"mailer.campaign.{issue_number}".encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        # SQLite: a write as the first statement takes the database's write lock for the
        # whole transaction, so the read that follows sees every committed campaign.
        connection.execute(update(C).where(C.c.id == -1).values(note=None))


def _enqueue_audience(connection: Connection, campaign_id: int) -> None:
    """The audience is the active readers at this instant, copied in one INSERT … SELECT."""
    source = select(
        literal(campaign_id, Integer), S.c.id, S.c.email,
        literal(DeliveryStatus.QUEUED.value, String), literal(0, Integer),
    ).where(S.c.status == SubscriberStatus.ACTIVE.value).order_by(S.c.id)
    connection.execute(
        insert(D).from_select(["campaign_id", "subscriber_id", "email", "status", "attempts"],
                              source)
    )


def resume_campaign(engine: Engine, campaign_id: int, *, content_sha256: str | None = None) -> None:
    """Mark a stopped (or finished, for --resend-unknown) campaign as sending again."""
    values: dict = {"status": CampaignStatus.SENDING.value, "note": None, "finished_at": None,
                    "pause_reason": None}
    if content_sha256:
        values["content_sha256"] = content_sha256
    with _writing(engine) as connection:
        connection.execute(update(C).where(C.c.id == campaign_id).values(**values))


def stop_campaign(engine: Engine, campaign_id: int, note: str) -> None:
    """Stopped (resumable by running the same command); a paused campaign stays paused."""
    with _writing(engine) as connection:
        connection.execute(
            update(C).where(C.c.id == campaign_id,
                            C.c.status.not_in((CampaignStatus.FINISHED.value,
                                               CampaignStatus.PAUSED.value)))
            .values(status=CampaignStatus.STOPPED.value, note=note)
        )


# -- the reputation breaker --------------------------------------------------------------------

def reputation(engine: Engine, campaign_id: int, *, canary_only: bool = False) -> Reputation:
    """The campaign's figures (or its canary sample's) as its events have recorded them so far,
    whichever process wrote them."""
    def count(condition):
        return func.count().filter(condition)

    sample = [D.c.canary.is_(True)] if canary_only else []
    with engine.connect() as connection:
        row = connection.execute(
            select(count(D.c.status == DeliveryStatus.SENT.value),
                   count(D.c.delivered_at.is_not(None)),
                   count(D.c.bounce_type == "permanent"),
                   count(D.c.complained_at.is_not(None)))
            .where(D.c.campaign_id == campaign_id, *sample)
        ).one()
    return Reputation(*row)


# -- the canary --------------------------------------------------------------------------------

def choose_canary(engine: Engine, campaign_id: int, size: int) -> int:
    """Record a random sample of ``size`` queued readers as the campaign's canary."""
    sample = (select(D.c.id).where(D.c.campaign_id == campaign_id,
                                   D.c.status == DeliveryStatus.QUEUED.value)
              .order_by(func.random()).limit(size))
    with _writing(engine) as connection:
        chosen = connection.execute(
            update(D).where(D.c.id.in_(sample.scalar_subquery())).values(canary=True)
        ).rowcount
        connection.execute(update(C).where(C.c.id == campaign_id).values(canary_size=chosen))
    return chosen


def canary_waiting(engine: Engine, campaign_id: int) -> int:
    """Canary readers not sent yet."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(D)
            .where(D.c.campaign_id == campaign_id, D.c.canary.is_(True),
                   D.c.status.in_(PENDING_STATUSES))
        ).scalar_one()


def wait_for_canary_until(engine: Engine, campaign_id: int, until, note: str) -> None:
    """While the canary's events are awaited the campaign is stopped (no worker joins) with a
    note saying until when; a rerun waits out what is left."""
    with _writing(engine) as connection:
        connection.execute(update(C).where(C.c.id == campaign_id)
                           .values(canary_until=until, status=CampaignStatus.STOPPED.value,
                                   note=note))


def pause_campaign(engine: Engine, campaign_id: int, reason: str, figures: Reputation) -> bool:
    """Pause a campaign being sent, keeping why and the figures; False if it was not sending
    (another worker paused it first, or it finished)."""
    with _writing(engine) as connection:
        return bool(connection.execute(
            update(C).where(C.c.id == campaign_id,
                            C.c.status.in_((CampaignStatus.SENDING.value,
                                            CampaignStatus.STOPPED.value)))
            .values(status=CampaignStatus.PAUSED.value, pause_reason=reason,
                    note=f"paused by the reputation breaker: {reason}", paused_at=utcnow(),
                    breaker_sent=figures.sent, breaker_delivered=figures.delivered,
                    breaker_hard_bounces=figures.hard_bounces,
                    breaker_complaints=figures.complaints)
        ).rowcount)


def breaker_baseline(campaign: Campaign) -> Reputation | None:
    """The figures an operator reviewed before resuming: the breaker watches what comes after."""
    if campaign.breaker_sent is None:
        return None
    return Reputation(campaign.breaker_sent or 0, campaign.breaker_delivered or 0,
                      campaign.breaker_hard_bounces or 0, campaign.breaker_complaints or 0)


def finish_if_done(engine: Engine, campaign_id: int) -> bool:
    """Finish the campaign when no row is queued or in flight; True when it is finished."""
    pending = exists().where(D.c.campaign_id == campaign_id, D.c.status.in_(PENDING_STATUSES))
    with _writing(engine) as connection:
        connection.execute(
            update(C).where(C.c.id == campaign_id, C.c.status != CampaignStatus.FINISHED.value,
                            ~pending)
            .values(status=CampaignStatus.FINISHED.value, finished_at=utcnow(), note=None)
        )
        status = connection.execute(select(C.c.status).where(C.c.id == campaign_id)).scalar_one()
    return status == CampaignStatus.FINISHED.value


def count_by_status(engine: Engine, campaign_id: int) -> dict[DeliveryStatus, int]:
    counts = {status: 0 for status in DeliveryStatus}
    with engine.connect() as connection:
        for status, count in connection.execute(
            select(D.c.status, func.count()).where(D.c.campaign_id == campaign_id)
            .group_by(D.c.status)
        ):
            counts[DeliveryStatus(status)] = count
    return counts


def failures(engine: Engine, campaign_id: int, limit: int = 10) -> list[tuple[str, str]]:
    """(address, reason) of some failed rows, for the summary."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(D.c.email, D.c.error).where(D.c.campaign_id == campaign_id,
                                               D.c.status == DeliveryStatus.FAILED.value)
            .order_by(D.c.id).limit(limit)
        ).all()
    return [(email, error or "") for email, error in rows]


# -- workers and recovery ----------------------------------------------------------------------

def register_worker(engine: Engine, worker_id: str, campaign_id: int, rate: float) -> None:
    with _writing(engine) as connection:
        connection.execute(insert(W).values(id=worker_id, campaign_id=campaign_id,
                                             heartbeat_at=utcnow(), rate=rate))


def heartbeat(engine: Engine, worker_id: str, rate: float,
              *, stale_after: timedelta = DEFAULT_STALE_AFTER) -> int:
    """Refresh our heartbeat; return how many live workers share our campaign (us included)."""
    now = utcnow()
    with _writing(engine) as connection:
        connection.execute(update(W).where(W.c.id == worker_id).values(heartbeat_at=now, rate=rate))
        campaign_id = connection.execute(
            select(W.c.campaign_id).where(W.c.id == worker_id)
        ).scalar_one_or_none()
        if campaign_id is None:
            return 1
        peers = connection.execute(
            select(W.c.id).where(W.c.campaign_id == campaign_id,
                                 W.c.heartbeat_at >= now - stale_after)
        ).scalars().all()
    return max(1, sum(1 for peer in peers if not worker_is_dead_locally(peer)))


def live_workers(engine: Engine, campaign_id: int,
                 *, stale_after: timedelta = DEFAULT_STALE_AFTER) -> int:
    with engine.connect() as connection:
        peers = connection.execute(
            select(W.c.id).where(W.c.campaign_id == campaign_id,
                                 W.c.heartbeat_at >= utcnow() - stale_after)
        ).scalars().all()
    return sum(1 for peer in peers if not worker_is_dead_locally(peer))


def unregister_worker(engine: Engine, worker_id: str) -> None:
    """Leave cleanly: give back leased rows we never started, drop our worker row."""
    with _writing(engine) as connection:
        _release(connection, D.c.claimed_by == worker_id)
        connection.execute(delete(W).where(W.c.id == worker_id))


def recover_abandoned(
    engine: Engine,
    campaign_id: int,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    is_dead: Callable[[str], bool] = worker_is_dead_locally,
) -> Recovery:
    """Clean up after workers that died: their in-flight rows become ``unknown``, their leased
    queued rows go back to the queue. A worker is dead when its heartbeat is older than
    ``stale_after`` or its pid on this host is gone; rows leased by a worker with no row at all
    count as abandoned too."""
    cutoff = utcnow() - stale_after
    with _writing(engine) as connection:
        workers = connection.execute(
            select(W.c.id, W.c.heartbeat_at).where(W.c.campaign_id == campaign_id)
        ).all()
        dead = tuple(wid for wid, beat in workers if beat < cutoff or is_dead(wid))
        live = [wid for wid, _ in workers if wid not in dead]
        abandoned = or_(D.c.claimed_by.is_(None), D.c.claimed_by.not_in(live)) if live else true()
        unknown = connection.execute(
            update(D).where(D.c.campaign_id == campaign_id,
                            D.c.status == DeliveryStatus.SENDING.value, abandoned)
            .values(status=DeliveryStatus.UNKNOWN.value,
                    error="in flight when its worker died: maybe sent, maybe not")
        ).rowcount
        released = _release(
            connection,
            and_(D.c.campaign_id == campaign_id, D.c.claimed_by.is_not(None), abandoned),
        )
        if dead:
            connection.execute(delete(W).where(W.c.id.in_(dead)))
    return Recovery(unknown=unknown, released=released, dead_workers=dead)


def _release(connection: Connection, condition) -> int:
    return connection.execute(
        update(D).where(condition, D.c.status == DeliveryStatus.QUEUED.value)
        .values(claimed_by=None, claimed_at=None)
    ).rowcount


def requeue_unknown(engine: Engine, campaign_id: int) -> int:
    """--resend-unknown: the operator accepts a possible second copy for these rows."""
    with _writing(engine) as connection:
        return connection.execute(
            update(D).where(D.c.campaign_id == campaign_id,
                            D.c.status == DeliveryStatus.UNKNOWN.value)
            .values(status=DeliveryStatus.QUEUED.value, claimed_by=None, claimed_at=None)
        ).rowcount


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
    if not _is_sqlite(engine):
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(D)
        .where(D.c.id.in_(candidates.scalar_subquery()))
        .values(claimed_by=worker_id, claimed_at=utcnow())
        .returning(D.c.id, D.c.subscriber_id, D.c.email, D.c.attempts)
    )
    with _writing(engine) as connection:
        rows = connection.execute(statement).all()
    return sorted((ClaimedDelivery(*row) for row in rows), key=lambda claimed: claimed.id)


# The two writes every message makes run as plain driver SQL: SQLAlchemy's statement machinery
# costs ~200 us each, as much as boto3's own work per message, and they run at the send rate.
_HOT_SQL = {
    "start": "UPDATE delivery SET status = 'sending', attempts = attempts + 1 "
             "WHERE id = {id} AND claimed_by = {worker} AND status = 'queued' "
             "AND EXISTS (SELECT 1 FROM subscriber "
             "WHERE subscriber.id = delivery.subscriber_id AND subscriber.status = 'active')",
    "skip": "UPDATE delivery SET status = 'skipped', error = COALESCE("
            "(SELECT 'subscriber is ' || subscriber.status FROM subscriber "
            "WHERE subscriber.id = delivery.subscriber_id), 'subscriber was deleted') "
            "WHERE id = {id} AND claimed_by = {worker} AND status = 'queued'",
    "sent": "UPDATE delivery SET status = 'sent', sent_at = {sent_at}, "
            "provider_message_id = {provider_id}, error = NULL "
            "WHERE id = {id} AND claimed_by = {worker} AND status = 'sending'",
    "finish": "UPDATE delivery SET status = {status}, error = {error} "
              "WHERE id = {id} AND claimed_by = {worker} AND status = 'sending'",
}
_HOT_CACHE: dict[tuple[str, str], str] = {}


def _hot(engine: Engine, name: str) -> str:
    """``name``'s SQL in the driver's own placeholder style (sqlite3 :x, psycopg %(x)s)."""
    key = (engine.dialect.name, name)
    sql = _HOT_CACHE.get(key)
    if sql is None:
        style = ":{}" if _is_sqlite(engine) else "%({})s"
        names = ("id", "worker", "sent_at", "provider_id", "status", "error")
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
    params = {"id": delivery_id, "worker": worker_id}
    start_sql, skip_sql = _hot(engine, "start"), _hot(engine, "skip")

    def statement(cursor: Any) -> DeliveryStatus | None:
        cursor.execute(start_sql, params)
        if cursor.rowcount:
            return DeliveryStatus.SENDING
        cursor.execute(skip_sql, params)
        return DeliveryStatus.SKIPPED if cursor.rowcount else None

    return _group(engine).run(statement)


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

    return _group(engine).run(statement)
