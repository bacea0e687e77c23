"""Figures the console has already counted, kept until the rows under them may have changed.

A finished campaign's ledger rows change in only two ways: an SES event updates a row (and is
always stored as a ``delivery_event`` row pointing at it, see ``events.apply``), or a reader is
forgotten (a ``forgotten_address`` row). So the console keeps each finished campaign's counts
and each settled issue's page, and before answering it asks a few cheap questions: which
campaigns did the events since last time touch, did any reader change status, was anyone
forgotten, was a campaign added? Only what those answers touch is counted again; campaigns
still sending are always counted afresh. Every ``FULL_REFRESH_SECONDS`` it forgets everything,
a safety net for writes that bypass the application.

Each `mailer serve` process keeps its own cache, but the questions go to the database on every
request, so a write by any process (another `serve`, `events poll`, the CLI) is seen by all of
them, and two processes behind the proxy show the same figures.

With 1,000,000 deliveries this turns the overview from a scan of the whole ledger into a scan
of the one campaign whose events are arriving (or of nothing, between sends). The CLI does not
use it: ``mailer stats`` always counts from scratch, and tests compare the two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.domain import CampaignStatus, SubscriberStatus, utcnow
from mailer.store.console import ListWeek, list_weeks, overview_from
from mailer.store.console_issue import IssueBundle, issue_bundle
from mailer.store.models import (
    Campaign,
    Delivery,
    DeliveryEventRecord,
    ForgottenAddress,
    Subscriber,
    SubscriberChange,
)
from mailer.store.stats import (
    COUNT_FIELDS,
    CampaignStats,
    _delivery_counts,
    _unsubscribed_after,
)
from mailer.store.subscriber_reads import subscribers_by_status

FULL_REFRESH_SECONDS = 3600.0  # a cold count of 1,000,000 rows takes seconds: not often
# Events and changes are re-examined this far below the last mark: on PostgreSQL a transaction
# holding a lower id may commit after a higher one was read.
EVENT_SLACK = 100


@dataclass(frozen=True)
class Marks:
    """The newest row of each table whose writes can change a figure, and for the tables that
    grow by id, how many rows sit within ``EVENT_SLACK`` of the newest: a row committed late
    under a lower id (another process's transaction, on PostgreSQL) leaves the newest id as it
    was but changes that count, so every process sees it."""

    event_id: int
    change_id: int
    subscriber_id: int
    campaign_id: int
    forgotten: int
    event_tail: int = 0
    change_tail: int = 0
    subscriber_tail: int = 0


def _newest_and_tail(session: Session, column) -> tuple[int, int]:
    newest = int(session.execute(select(func.max(column))).scalar() or 0)
    tail = session.execute(select(func.count()).where(column > newest - EVENT_SLACK)).scalar()
    return newest, int(tail or 0)


def current_marks(session: Session) -> Marks:
    event_id, event_tail = _newest_and_tail(session, DeliveryEventRecord.id)
    change_id, change_tail = _newest_and_tail(session, SubscriberChange.id)
    subscriber_id, subscriber_tail = _newest_and_tail(session, Subscriber.id)
    campaign_id = int(session.execute(select(func.max(Campaign.id))).scalar() or 0)
    forgotten = int(session.execute(select(func.count()).select_from(ForgottenAddress)).scalar())
    return Marks(event_id, change_id, subscriber_id, campaign_id, forgotten,
                 event_tail, change_tail, subscriber_tail)


def _events_moved(marks: Marks, previous: Marks) -> bool:
    return (marks.event_id, marks.event_tail) != (previous.event_id, previous.event_tail)


def _changes_moved(marks: Marks, previous: Marks) -> bool:
    return (marks.change_id, marks.change_tail) != (previous.change_id, previous.change_tail)


def _subscribers_moved(marks: Marks, previous: Marks) -> bool:
    return ((marks.subscriber_id, marks.subscriber_tail)
            != (previous.subscriber_id, previous.subscriber_tail))


def touched_campaigns(session: Session, after_event_id: int) -> set[int]:
    """Campaigns whose rows the events stored after ``after_event_id`` may have changed."""
    query = (select(Delivery.campaign_id).distinct()
             .join(DeliveryEventRecord, DeliveryEventRecord.delivery_id == Delivery.id)
             .where(DeliveryEventRecord.id > after_event_id))
    return set(session.execute(query).scalars())


def new_unsubscribes(session: Session, after_change_id: int) -> bool:
    """Did anyone unsubscribe since ``after_change_id``? (Only that moves "unsubscribed after".)"""
    query = (select(SubscriberChange.id)
             .where(SubscriberChange.id > max(0, after_change_id - EVENT_SLACK),
                    SubscriberChange.to_status == SubscriberStatus.UNSUBSCRIBED.value).limit(1))
    return session.execute(query).first() is not None


def delivery_counts(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """The ledger's counts per campaign: the same expressions as ``stats.campaign_stats``."""
    if not campaign_ids:
        return {}
    counts = _delivery_counts()
    query = (select(Delivery.campaign_id, *counts)
             .where(Delivery.campaign_id.in_(campaign_ids))
             .group_by(Delivery.campaign_id))
    names = [c.name for c in counts]
    found = {row[0]: {name: int(value) for name, value in zip(names, row[1:], strict=True)}
             for row in session.execute(query)}
    empty = dict.fromkeys(names, 0)
    return {cid: found.get(cid, empty) for cid in campaign_ids}


@dataclass
class _Store:
    counts: dict[int, dict[str, int]] = field(default_factory=dict)  # finished campaigns only
    unsubscribed: dict[int, int] | None = None
    unsubscribed_for: tuple[int, ...] = ()
    bundles: dict[int, IssueBundle] = field(default_factory=dict)  # settled issues only
    list_parts: tuple[date, list[ListWeek], dict[str, int]] | None = None


class ConsoleCache:
    """One per web app (``app.state``); thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 full_refresh: float = FULL_REFRESH_SECONDS) -> None:
        self._clock, self._full_refresh = clock, full_refresh
        self._lock = threading.Lock()
        self._store = _Store()
        self._marks: Marks | None = None
        self._since = 0.0

    # -- invalidation --------------------------------------------------------------------------

    def _forget_stale(self, session: Session) -> None:
        marks, previous, store = current_marks(session), self._marks, self._store
        now = self._clock()
        if (previous is None or now - self._since > self._full_refresh
                or marks.forgotten != previous.forgotten):
            self._store, self._marks, self._since = _Store(), marks, now
            return
        if _events_moved(marks, previous):
            touched = touched_campaigns(session, max(0, previous.event_id - EVENT_SLACK))
            for campaign_id in touched:
                store.counts.pop(campaign_id, None)
            store.bundles = {n: b for n, b in store.bundles.items()
                             if not touched & {c.campaign_id for c in b.detail.campaigns}}
        if marks.campaign_id != previous.campaign_id or (
                _changes_moved(marks, previous)
                and new_unsubscribes(session, previous.change_id)):
            store.unsubscribed = None  # who unsubscribed after which campaign
            store.bundles.clear()
        if _changes_moved(marks, previous) or _subscribers_moved(marks, previous):
            store.list_parts = None
        self._marks = marks

    # -- what the pages ask for ----------------------------------------------------------------

    def campaign_stats(self, session: Session) -> list[CampaignStats]:
        """``stats.campaign_stats(session)``, counting only what may have changed."""
        with self._lock:
            self._forget_stale(session)
            return self._campaign_stats(session)

    def _campaign_stats(self, session: Session) -> list[CampaignStats]:
        store = self._store
        rows = session.execute(
            select(Campaign.id, Campaign.issue_number, Campaign.subject, Campaign.status,
                   Campaign.started_at, Campaign.created_at, Campaign.finished_at)
            .order_by(Campaign.issue_number.desc(), Campaign.id.desc())).mappings().all()
        finished = {r["id"] for r in rows if str(r["status"]) == CampaignStatus.FINISHED.value}
        counts = delivery_counts(session, [r["id"] for r in rows
                                           if r["id"] not in finished or r["id"] not in store.counts])
        store.counts.update({cid: c for cid, c in counts.items() if cid in finished})
        ids = tuple(r["id"] for r in rows)
        if store.unsubscribed is None or store.unsubscribed_for != ids:
            store.unsubscribed, store.unsubscribed_for = _unsubscribed_after(session, list(ids)), ids
        return [
            CampaignStats(
                campaign_id=r["id"], issue_number=r["issue_number"], subject=r["subject"],
                status=str(r["status"]), started_at=r["started_at"] or r["created_at"],
                finished_at=r["finished_at"], unsubscribed=store.unsubscribed.get(r["id"], 0),
                **{name: (counts.get(r["id"]) or store.counts[r["id"]])[name]
                   for name in COUNT_FIELDS if name != "unsubscribed"})
            for r in rows
        ]

    def issue_bundle(self, session: Session, issue_number: int) -> IssueBundle | None:
        with self._lock:
            self._forget_stale(session)
            cached = self._store.bundles.get(issue_number)
            if cached is not None:
                return cached
            bundle = issue_bundle(session, issue_number)
            if bundle is not None and bundle.settled:
                self._store.bundles[issue_number] = bundle
            return bundle

    def list_parts(self, session: Session) -> tuple[list[ListWeek], dict[str, int]]:
        """The weeks of the list and today's totals (the same as list_weeks, subscribers_by_status)."""
        with self._lock:
            self._forget_stale(session)
            today = utcnow().date()
            parts = self._store.list_parts
            if parts is None or parts[0] != today:
                parts = (today, list_weeks(session, today=today), subscribers_by_status(session))
                self._store.list_parts = parts
            return parts[1], parts[2]


def cached_overview_document(session: Session, cache: ConsoleCache) -> dict:
    """``console.overview_document`` through the cache: the same keys, the same figures."""
    campaigns = cache.campaign_stats(session)
    weeks, totals = cache.list_parts(session)
    return overview_from(campaigns, weeks, totals)


__all__ = ["ConsoleCache", "Marks", "cached_overview_document", "current_marks",
           "delivery_counts", "touched_campaigns"]
