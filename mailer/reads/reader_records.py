"""Readers and events for the operator console: search, one reader's whole record, the event
log. Reads only: the operator's actions on a reader are a use case, :mod:`mailer.reader_actions`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import column, func, or_, select, table, text
from sqlmodel import Session, col

from mailer.domain import BounceType, SubscriberStatus
from mailer.reads.list_health import MAX_STORE_INT, storable_id
from mailer.reads.sql_figures import engine_of
from mailer.store.models import (
    Campaign,
    Delivery,
    DeliveryEventRecord,
    Subscriber,
    SubscriberChange,
    stored_id,
)

SEARCH_LIMIT = 50
EVENTS_PAGE = 50
READER_DELIVERIES = 100
READER_EVENTS = 100


@dataclass(frozen=True)
class ReaderPage:
    """One page of the readers list: newest first, an exact address first of all."""

    readers: list[Subscriber]
    older: int | None  # the id to pass as ``before`` for the next page; None on the last
    exact: bool = False  # the first reader's address is the one searched for


def _contains(needle: str):
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return func.lower(col(Subscriber.email)).like(pattern, escape="\\")


# The trigram index of migration 0015 (SQLite's FTS5): rowid is the reader's id.
_SEARCH = table("subscriber_search", column("rowid"), column("email"))
_HAS_SEARCH: dict[str, bool] = {}
_WILDCARDS = re.compile(r"[%_\\]")


def _search_index(session: Session) -> bool:
    """Whether this SQLite database has the trigram table (a SQLite without the tokenizer
    makes none), asked once per database."""
    engine = engine_of(session)
    if engine.dialect.name != "sqlite":
        return False
    key = engine.url.render_as_string(hide_password=False)
    if key not in _HAS_SEARCH:
        _HAS_SEARCH[key] = session.execute(text(
            "SELECT 1 FROM sqlite_master WHERE name = 'subscriber_search'")).first() is not None
    return _HAS_SEARCH[key]


def _indexable(needle: str) -> bool:
    """A trigram index finds a part with three characters in a row that are not wildcards."""
    return any(len(run) >= 3 for run in _WILDCARDS.split(needle))


def _readers_containing(needle: str):
    """Readers whose address contains ``needle``, newest first, found through the trigram
    index: FTS5 answers LIKE from the index only without an ESCAPE clause, so the index is asked
    with each wildcard character standing for itself or any other (a few more rows), and the
    exact, escaped test then keeps only the true ones."""
    loose = "%" + _WILDCARDS.sub("_", needle) + "%"
    return (select(Subscriber).select_from(_SEARCH)
            .join(Subscriber, col(Subscriber.id) == _SEARCH.c.rowid)
            .where(_SEARCH.c.email.like(loose), _contains(needle))
            .order_by(_SEARCH.c.rowid.desc()))


def list_readers(session: Session, text: str = "", status: str | None = None,
                 before: int | None = None, limit: int = SEARCH_LIMIT) -> ReaderPage:
    """The newest readers (optionally of one status, whose address contains ``text`` in any
    letter case), older than reader ``before``. Keyed on the id so each page is an index walk
    that stops after ``limit`` rows, however long the list; the reader whose address is exactly
    ``text`` comes first, on the first page only."""
    needle = text.strip().lower()
    indexed = bool(needle) and _indexable(needle) and _search_index(session)
    # Through the index, the walk goes by its rowid (the reader's id), so `before` is asked of
    # it too: that is what lets FTS5 start at the right place and stop after `limit` rows.
    newest_first = _SEARCH.c.rowid if indexed else col(Subscriber.id)
    query = _readers_containing(needle) if indexed else select(Subscriber).order_by(
        col(Subscriber.id).desc())
    exact = None
    if needle:
        if not indexed:  # PostgreSQL's GIN index (0015) serves this same LIKE
            query = query.where(_contains(needle))
        query = query.where(func.lower(col(Subscriber.email)) != needle)
        exact = None if before is not None else _exact_reader(session, needle, status)
    if status:
        query = query.where(col(Subscriber.status) == status)
    if before is not None:
        query = query.where(newest_first < min(before, MAX_STORE_INT))
    room = limit - (1 if exact else 0)
    rows = list(session.execute(query.limit(room + 1)).scalars())
    older = rows[room - 1].id if len(rows) > room else None
    return ReaderPage(([exact] if exact else []) + rows[:room], older, exact is not None)


def _exact_reader(session: Session, needle: str, status: str | None) -> Subscriber | None:
    # one lookup on the lower(email) unique index
    query = select(Subscriber).where(func.lower(col(Subscriber.email)) == needle)
    if status:
        query = query.where(col(Subscriber.status) == status)
    return session.execute(query).scalars().first()


@dataclass(frozen=True)
class ReaderDelivery:
    delivery_id: int
    issue_number: int
    status: str
    sent_at: datetime | None
    delivered_at: datetime | None
    bounced_at: datetime | None
    bounce_type: str | None
    complained_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a reader's history: a status change or a provider event."""

    at: datetime
    kind: str  # "change" or the event kind
    text: str
    source: str
    detail: str | None
    event_id: int | None = None


@dataclass(frozen=True)
class ReaderRecord:
    subscriber: Subscriber
    deliveries: list[ReaderDelivery]
    history: list[HistoryEntry]  # newest first
    has_soft_bounces: bool
    has_hard_bounces: bool

    @property
    def soft_bounced(self) -> bool:
        """Suppressed for repeated transient bounces only: an operator may lift that."""
        return (str(self.subscriber.status) == SubscriberStatus.BOUNCED.value
                and self.has_soft_bounces and not self.has_hard_bounces)


def _reader_deliveries(session: Session, subscriber_id: int) -> list[ReaderDelivery]:
    query = (select(col(Delivery.id), col(Campaign.issue_number), col(Delivery.status),
                    col(Delivery.sent_at), col(Delivery.delivered_at), col(Delivery.bounced_at),
                    col(Delivery.bounce_type), col(Delivery.complained_at), col(Delivery.error))
             .join(Campaign, col(Campaign.id) == col(Delivery.campaign_id))
             .where(col(Delivery.subscriber_id) == subscriber_id)
             .order_by(col(Delivery.id).desc()).limit(READER_DELIVERIES))
    return [ReaderDelivery(stored_id(delivery_id), issue, status, sent, delivered, bounced,
                           bounce_type, complained, error)
            for delivery_id, issue, status, sent, delivered, bounced, bounce_type, complained, error
            in session.execute(query)]


def detail_text(detail: str | None) -> str | None:
    """A change's JSON detail as "reason: …; operator: …" for people."""
    if not detail:
        return None
    try:
        data = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(data, dict):
        return detail
    return "; ".join(f"{key}: {value}" for key, value in data.items() if value not in (None, ""))


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _change_text(change: SubscriberChange) -> str:
    if change.from_status == change.to_status and "address_changed_from" in (change.detail or ""):
        return f"address changed ({change.to_status})"  # the reader's page (issue 26)
    before = f"{change.from_status} → " if change.from_status else "created as "
    return f"{before}{change.to_status}"


def _reader_history(session: Session, subscriber: Subscriber,
                    delivery_ids: list[int]) -> list[HistoryEntry]:
    changes = session.execute(select(SubscriberChange)
                              .where(col(SubscriberChange.subscriber_id) == subscriber.id)).scalars()
    entries = [HistoryEntry(c.at, "change", _change_text(c), c.source, detail_text(c.detail))
               for c in changes]
    matches = [func.lower(col(DeliveryEventRecord.recipient)) == subscriber.email.lower()]
    if delivery_ids:
        matches.append(col(DeliveryEventRecord.delivery_id).in_(delivery_ids))
    events = session.execute(
        select(col(DeliveryEventRecord.id), col(DeliveryEventRecord.occurred_at),
               col(DeliveryEventRecord.kind), col(DeliveryEventRecord.bounce_type),
               col(DeliveryEventRecord.bounce_subtype), col(DeliveryEventRecord.diagnostic))
        .where(or_(*matches)).order_by(col(DeliveryEventRecord.id).desc()).limit(READER_EVENTS))
    for event_id, at, kind, bounce_type, subtype, diagnostic in events:
        words = " ".join(w for w in (bounce_type, subtype) if w)
        entries.append(HistoryEntry(at, str(kind), f"{kind} {words}".strip(), "ses", diagnostic,
                                    event_id))
    return sorted(entries, key=lambda e: _aware(e.at) or datetime.min.replace(tzinfo=UTC),
                  reverse=True)


def reader_record(session: Session, subscriber_id: int) -> ReaderRecord | None:
    if not storable_id(subscriber_id):
        return None
    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None:
        return None
    deliveries = _reader_deliveries(session, subscriber_id)
    all_ids = [stored_id(delivery_id) for delivery_id in session.execute(
        select(col(Delivery.id)).where(col(Delivery.subscriber_id) == subscriber_id)).scalars()]
    kinds = {d.bounce_type for d in session.execute(
        select(col(Delivery.bounce_type)).where(col(Delivery.subscriber_id) == subscriber_id,
                                                col(Delivery.bounced_at).is_not(None)))}
    return ReaderRecord(subscriber, deliveries, _reader_history(session, subscriber, all_ids),
                        has_soft_bounces=BounceType.TRANSIENT.value in kinds,
                        has_hard_bounces=BounceType.PERMANENT.value in kinds)


def consent_record(subscriber: Subscriber) -> dict[str, object]:
    extra = {}
    if subscriber.attrs:
        try:
            extra = {k: v for k, v in json.loads(subscriber.attrs).items()
                     if isinstance(v, (str, int, float))}
        except (ValueError, AttributeError):
            extra = {}
    return {"source": subscriber.source, "signed up": subscriber.created_at,
            "sign-up IP": subscriber.signup_ip, "confirmed": subscriber.confirmed_at,
            "confirmation IP": subscriber.confirm_ip, **extra}


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    id: int
    received_at: datetime
    occurred_at: datetime
    kind: str
    recipient: str
    subscriber_id: int | None
    issue_number: int | None
    bounce_type: str | None
    bounce_subtype: str | None
    diagnostic: str | None


@dataclass(frozen=True)
class EventPage:
    rows: list[EventRow]
    older: int | None  # the id to pass as ``before`` for the next page; None on the last


def latest_events(session: Session, kind: str | None = None, before: int | None = None,
                  limit: int = EVENTS_PAGE) -> EventPage:
    """The events received last (arrival order, the id), optionally of one kind, older than
    event ``before``. Arrival order, not occurred time: the kind index holds it, so a page of
    the commonest kind among millions is an index walk, not a sort."""
    E = DeliveryEventRecord
    query = (select(col(E.id), col(E.received_at), col(E.occurred_at), col(E.kind),
                    col(E.recipient), col(Delivery.subscriber_id), col(Campaign.issue_number),
                    col(E.bounce_type), col(E.bounce_subtype), col(E.diagnostic))
             .outerjoin(Delivery, col(Delivery.id) == col(E.delivery_id))
             .outerjoin(Campaign, col(Campaign.id) == col(Delivery.campaign_id))
             .order_by(col(E.id).desc()).limit(limit + 1))
    if kind:
        query = query.where(col(E.kind) == kind)
    if before is not None:
        query = query.where(col(E.id) < min(before, MAX_STORE_INT))
    rows = [EventRow(stored_id(event_id), received_at, occurred_at, kind, recipient, subscriber_id,
                     issue_number, bounce_type, subtype, diagnostic)
            for (event_id, received_at, occurred_at, kind, recipient, subscriber_id, issue_number,
                 bounce_type, subtype, diagnostic) in session.execute(query)]
    return EventPage(rows[:limit], rows[limit - 1].id if len(rows) > limit else None)


def event_kinds(session: Session) -> list[str]:
    return [str(k) for k in session.execute(
        select(col(DeliveryEventRecord.kind)).group_by(col(DeliveryEventRecord.kind))
        .order_by(col(DeliveryEventRecord.kind))).scalars()]


def event_payload(session: Session, event_id: int) -> DeliveryEventRecord | None:
    if not storable_id(event_id):
        return None
    return session.get(DeliveryEventRecord, event_id)


__all__ = [
    "EventPage", "EventRow", "HistoryEntry", "ReaderDelivery", "ReaderPage", "ReaderRecord",
    "consent_record", "event_kinds", "event_payload", "latest_events", "list_readers",
    "reader_record",
]
