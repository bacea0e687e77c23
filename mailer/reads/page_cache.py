"""The issue pages' breakdowns the console has already counted, kept until the rows under them
may have changed.

The campaigns' figures (the overview, each issue's headline) are not cached any more: they are
read from the counters kept on write (migration 0013, ``store.counters``), a few rows whatever
the ledger's size, so every `serve` process shows the same numbers at once. What is kept here
are a settled issue's breakdowns (providers, bounce reasons, the minute timeline, unsubscribes)
and the list's weeks: before answering, the cache asks a few cheap questions (which campaigns
did the events since last time touch, did any reader change status, was anyone forgotten, was a
campaign added) and a cached issue page is dropped as soon as its counters differ from the ones
it was built with. Every ``FULL_REFRESH_SECONDS`` it forgets everything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from mailer.domain import SubscriberStatus, utcnow
from mailer.reads.list_health import ListWeek, list_weeks, overview_from
from mailer.reads.issue_report import IssueBundle, issue_bundle
from mailer.store.models import (
    Campaign,
    Delivery,
    DeliveryEventRecord,
    ForgottenAddress,
    Subscriber,
    SubscriberChange,
)
from mailer.reads.delivery_figures import CampaignStats, campaign_stats
from mailer.reads.sql_figures import EVENT_SLACK, newest_and_tail
from mailer.reads.subscriber_figures import subscribers_by_status

FULL_REFRESH_SECONDS = 3600.0  # a cold count of 1,000,000 rows takes seconds: not often


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


def current_marks(session: Session) -> Marks:
    event_id, event_tail = newest_and_tail(session, DeliveryEventRecord.id)
    change_id, change_tail = newest_and_tail(session, SubscriberChange.id)
    subscriber_id, subscriber_tail = newest_and_tail(session, Subscriber.id)
    campaign_id = int(session.execute(select(func.max(Campaign.id))).scalar() or 0)
    forgotten = int(session.execute(select(func.count()).select_from(ForgottenAddress))
                    .scalar_one())
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
    query = (select(col(Delivery.campaign_id)).distinct()
             .join(DeliveryEventRecord, col(DeliveryEventRecord.delivery_id) == col(Delivery.id))
             .where(col(DeliveryEventRecord.id) > after_event_id))
    return set(session.execute(query).scalars())


def new_unsubscribes(session: Session, after_change_id: int) -> bool:
    """Did anyone unsubscribe since ``after_change_id``? (Only that moves "unsubscribed after".)"""
    query = (select(col(SubscriberChange.id))
             .where(col(SubscriberChange.id) > max(0, after_change_id - EVENT_SLACK),
                    col(SubscriberChange.to_status) == SubscriberStatus.UNSUBSCRIBED.value).limit(1))
    return session.execute(query).first() is not None


@dataclass
class _Store:
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
            store.bundles = {n: b for n, b in store.bundles.items()
                             if not touched & {c.campaign_id for c in b.detail.campaigns}}
        if marks.campaign_id != previous.campaign_id or (
                _changes_moved(marks, previous)
                and new_unsubscribes(session, previous.change_id)):
            store.bundles.clear()  # who unsubscribed after which campaign
        if _changes_moved(marks, previous) or _subscribers_moved(marks, previous):
            store.list_parts = None
        self._marks = marks

    # -- what the pages ask for ----------------------------------------------------------------

    def campaign_stats(self, session: Session) -> list[CampaignStats]:
        """``stats.campaign_stats(session)``: read from the counters kept on write (migration
        0013), never cached, so every `serve` process shows the same figures at once."""
        return campaign_stats(session)

    def issue_bundle(self, session: Session, issue_number: int) -> IssueBundle | None:
        with self._lock:
            self._forget_stale(session)
            cached = self._store.bundles.get(issue_number)
            if cached is not None:
                # the headline figures come from the counters, always current; a change in
                # them (an event committed late under a lower id, say) drops the breakdowns
                campaigns = campaign_stats(session, issue_number)
                if campaigns == cached.detail.campaigns:
                    return cached
                del self._store.bundles[issue_number]
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
           "touched_campaigns"]
