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

This module holds the campaigns and their queries. The write machinery (one SQLite writer, the
group committer, the hot-path SQL) is :mod:`mailer.store.ledger_writes`; the workers'
identity, heartbeats and recovery are :mod:`mailer.store.workers`. Both are re-exported here.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, and_, or_, String, exists, func, insert, literal, select, text, update
from sqlalchemy.engine import Connection, Engine

from mailer.domain import (
    BounceType,
    CampaignStatus,
    DeliveryStatus,
    Reputation,
    SubscriberStatus,
    utcnow,
)
from mailer.errors import StoreError
from mailer.store.ledger_writes import (  # the hot path, under the names dispatch has always used
    ClaimedDelivery as ClaimedDelivery,
    claim_batch as claim_batch,
    mark_failed as mark_failed,
    mark_failed_held as mark_failed_held,
    mark_retry as mark_retry,
    mark_sent as mark_sent,
    mark_sent_many as mark_sent_many,
    mark_unknown as mark_unknown,
    start_sending as start_sending,
    start_sending_many as start_sending_many,
    writing,
)
from mailer.store.models import Campaign, Delivery, DeliveryEventRecord, Subscriber, table_of
from mailer.store.workers import (  # worker identity, heartbeats and recovery
    DEFAULT_STALE_AFTER as DEFAULT_STALE_AFTER,
    Recovery as Recovery,
    heartbeat as heartbeat,
    live_workers as live_workers,
    new_worker_id as new_worker_id,
    recover_abandoned as recover_abandoned,
    register_worker as register_worker,
    unregister_worker as unregister_worker,
    worker_is_dead_locally as worker_is_dead_locally,
)

D = table_of(Delivery)
C = table_of(Campaign)
S = table_of(Subscriber)

OPEN_STATUSES = (CampaignStatus.SENDING.value, CampaignStatus.STOPPED.value,
                 CampaignStatus.PAUSED.value)
PENDING_STATUSES = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)


@dataclass(frozen=True)
class CampaignStart:
    campaign: Campaign
    created: bool  # False: an open campaign was resumed, or the issue is already finished


# -- campaigns ---------------------------------------------------------------------------------

def store_error(engine: Engine, error: BaseException) -> StoreError | None:
    """A database error no send can go on after (disk full, a damaged file) as one line."""
    from mailer.store.db import unusable_database

    return unusable_database(error, engine.url.render_as_string(hide_password=False))


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


PAUSED_BY_READER = "paused by the reader"  # the skipped row's error: counted apart


def audience_size(engine: Engine) -> int:
    """Readers a new campaign would go to right now (active, and not paused)."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(S).where(_receiving(utcnow()))
        ).scalar_one()


def _receiving(now: datetime):
    return and_(S.c.status == SubscriberStatus.ACTIVE.value,
                or_(S.c.paused_until.is_(None), S.c.paused_until <= now))


def _paused(now: datetime):
    return and_(S.c.status == SubscriberStatus.ACTIVE.value, S.c.paused_until > now)


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
    with writing(engine) as connection:
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
    """The audience is the active readers at this instant, copied in one INSERT … SELECT;
    readers who paused themselves get their row too, skipped, so they are counted apart."""
    now = utcnow()
    for status, error, readers in ((DeliveryStatus.QUEUED, None, _receiving(now)),
                                   (DeliveryStatus.SKIPPED, PAUSED_BY_READER, _paused(now))):
        source = select(
            literal(campaign_id, Integer), S.c.id, S.c.email,
            literal(status.value, String), literal(0, Integer), literal(error, String),
        ).where(readers).order_by(S.c.id)
        connection.execute(insert(D).from_select(
            ["campaign_id", "subscriber_id", "email", "status", "attempts", "error"], source))


def resume_campaign(engine: Engine, campaign_id: int, *, content_sha256: str | None = None) -> None:
    """Mark a stopped (or finished, for --resend-unknown) campaign as sending again."""
    values: dict = {"status": CampaignStatus.SENDING.value, "note": None, "finished_at": None,
                    "pause_reason": None}
    if content_sha256:
        values["content_sha256"] = content_sha256
    with writing(engine) as connection:
        connection.execute(update(C).where(C.c.id == campaign_id).values(**values))


def stop_campaign(engine: Engine, campaign_id: int, note: str) -> None:
    """Stopped (resumable by running the same command); a paused campaign stays paused."""
    with writing(engine) as connection:
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
                   count(D.c.bounce_type == BounceType.PERMANENT.value),  # as stats counts
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
    with writing(engine) as connection:
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
    with writing(engine) as connection:
        connection.execute(update(C).where(C.c.id == campaign_id)
                           .values(canary_until=until, status=CampaignStatus.STOPPED.value,
                                   note=note))


def pause_campaign(engine: Engine, campaign_id: int, reason: str, figures: Reputation) -> bool:
    """Pause a campaign being sent, keeping why and the figures; False if it was not sending
    (another worker paused it first, or it finished)."""
    with writing(engine) as connection:
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
    with writing(engine) as connection:
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


def paused_by_readers(engine: Engine, campaign_id: int) -> int:
    """The campaign's rows skipped because their reader had paused (counted apart)."""
    with engine.connect() as connection:
        return connection.execute(select(func.count()).where(
            D.c.campaign_id == campaign_id, D.c.status == DeliveryStatus.SKIPPED.value,
            D.c.error == PAUSED_BY_READER)).scalar_one()


def failures(engine: Engine, campaign_id: int, limit: int = 10) -> list[tuple[str, str]]:
    """(address, reason) of some failed rows, for the summary."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(D.c.email, D.c.error).where(D.c.campaign_id == campaign_id,
                                               D.c.status == DeliveryStatus.FAILED.value)
            .order_by(D.c.id).limit(limit)
        ).all()
    return [(email, error or "") for email, error in rows]


def requeue_unknown(engine: Engine, campaign_id: int) -> int:
    """--resend-unknown: the operator accepts a possible second copy for these rows."""
    with writing(engine) as connection:
        return connection.execute(
            update(D).where(D.c.campaign_id == campaign_id,
                            D.c.status == DeliveryStatus.UNKNOWN.value)
            .values(status=DeliveryStatus.QUEUED.value, claimed_by=None, claimed_at=None)
        ).rowcount




# -- rows whose SES answer was lost settle themselves (issue 21 §1) ------------------------------

SETTLE_REQUEUED = ("re-sent once: no SES event for it after the settle window, while events "
                   "for messages sent after it arrived")


@dataclass(frozen=True)
class Settling:
    """Where a campaign's ``unknown`` rows stand against the settle rule."""

    requeued: int  # queued again now (or, when only counting, that would be)
    waiting: int  # still inside their settle window
    unproven: int  # past it, but no event for a later message proves the event path live
    window_ends: datetime | None  # when the last waiting row's window ends


def settle_unknown(engine: Engine, campaign_id: int, settle_after: timedelta, *,
                   requeue: bool = True) -> Settling:
    """Re-queue each ``unknown`` row that had no SES event within ``settle_after`` of its
    request while an event arrived for another row of the campaign requested after it.

    One conditional UPDATE decides, so an event recorded meanwhile (which turns the row
    ``sent``) and the re-queue exclude each other: a row is never re-queued once SES has
    spoken for it. With ``requeue`` False nothing changes (a dry run counts)."""
    deadline = utcnow() - settle_after
    due = _settle_due(campaign_id, deadline)
    with writing(engine) as connection:
        if requeue:
            requeued = connection.execute(
                update(D).where(due)
                .values(status=DeliveryStatus.QUEUED.value, claimed_by=None, claimed_at=None,
                        error=SETTLE_REQUEUED)
            ).rowcount
        else:
            requeued = connection.execute(select(func.count()).where(due)).scalar_one()
        unknown = and_(D.c.campaign_id == campaign_id, D.c.status == DeliveryStatus.UNKNOWN.value)
        in_window = and_(unknown, D.c.claimed_at > deadline)
        waiting, last = connection.execute(
            select(func.count(), func.max(D.c.claimed_at)).where(in_window)).one()
        left = connection.execute(select(func.count()).where(unknown)).scalar_one()
    unproven = left - waiting - (0 if requeue else requeued)
    return Settling(requeued=requeued, waiting=waiting, unproven=unproven,
                    window_ends=last + settle_after if last is not None else None)


def _settle_due(campaign_id: int, deadline: datetime):
    """The rule as one condition on a delivery row (see :func:`settle_unknown`)."""
    E = table_of(DeliveryEventRecord)
    later = D.alias("later")
    heard_of = exists().where(E.c.delivery_id == D.c.id)
    # An event for another row whose request came later, or that SES itself stamped later
    # (a Delivery for an earlier message): events published after this request reached us.
    path_live = exists().where(
        E.c.delivery_id == later.c.id, later.c.campaign_id == campaign_id,
        later.c.id != D.c.id,
        or_(later.c.claimed_at > D.c.claimed_at, E.c.occurred_at > D.c.claimed_at))
    return and_(D.c.campaign_id == campaign_id, D.c.status == DeliveryStatus.UNKNOWN.value,
                D.c.claimed_at.is_not(None), D.c.claimed_at <= deadline, ~heard_of, path_live)
