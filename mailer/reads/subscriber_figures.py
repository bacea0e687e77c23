"""The list, read only: how many subscribers are in each status, who they are, one
subscriber's consent record, and how the list grew week by week.

Changes go through :mod:`mailer.store.subscribers`; nothing here writes.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm import Session
import sqlmodel
from sqlmodel import col

from mailer.domain import IMPORT_SOURCES, SubscriberStatus
from mailer.store.models import Subscriber, SubscriberChange, SubscriberCounts, WeekCounts
from mailer.reads.quick_counts import GROWTH_COLUMNS, WeekGrowth, every_status, weeks_oldest_first
from mailer.reads.sql_figures import week_bucket


def subscribers_by_status(session: Session) -> dict[str, int]:
    """How many subscribers are in each status now (every status present, zero when none),
    read from ``subscriber_counts`` (kept on write, migration 0013)."""
    return every_status(session.execute(select(col(SubscriberCounts.status),
                                               col(SubscriberCounts.n))))


def counted_subscribers_by_status(session: Session) -> dict[str, int]:
    """:func:`subscribers_by_status` counted from the subscriber rows (``mailer db recount``)."""
    query = (select(col(Subscriber.status), func.count(col(Subscriber.id)))
             .group_by(col(Subscriber.status)))
    return every_status(session.execute(query))


def list_subscribers(session: Session, *, status: SubscriberStatus | None = None,
                     limit: int | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(col(Subscriber.id))
    if status is not None:
        query = query.where(col(Subscriber.status) == status)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def history(session: sqlmodel.Session,
            raw_email: str) -> tuple[Subscriber, list[SubscriberChange]]:
    """A subscriber and its changes, oldest first: the consent record. A session of the
    store's (sqlmodel's): the address is looked up through :mod:`mailer.store.subscribers`."""
    # the subscribers module (address checks, tokens, CSV) loads only for a single reader's
    # history: a count does not pay for it
    from mailer.store.subscribers import require_subscriber

    subscriber = require_subscriber(session, raw_email)
    changes = session.execute(
        select(SubscriberChange).where(col(SubscriberChange.subscriber_id) == subscriber.id)
        .order_by(col(SubscriberChange.at), col(SubscriberChange.id))).scalars().all()
    return subscriber, list(changes)


# -- the list over time -----------------------------------------------------------------------


def imported_here():
    """A history row that is an import taking a reader in (a CSV or Mailchimp file): counted
    as "imported", never as a sign-up, a confirmation or an unsubscribe of this list."""
    return and_(col(SubscriberChange.from_status).is_(None),
                col(SubscriberChange.source).in_(sorted(IMPORT_SOURCES)))


def signed_up_here():
    """A reader who came by the form or by hand, not from an imported file."""
    return or_(col(Subscriber.source).is_(None), col(Subscriber.source).not_in(sorted(IMPORT_SOURCES)))


def _weekly_counts(session: Session, column, *conditions) -> dict[str, int]:
    week = week_bucket(session, column).label("week")
    query = select(week, func.count()).where(*conditions).group_by(week)
    return {str(key): int(n) for key, n in session.execute(query)}


def subscriber_growth(session: Session, weeks: int | None = None) -> list[WeekGrowth]:
    """:func:`counted_subscriber_growth`, read from ``week_counts`` (kept on write, migration
    0013): one row per week whatever the size of the list."""
    columns = [getattr(WeekCounts, name) for name in GROWTH_COLUMNS]
    query = (select(col(WeekCounts.week), *columns)
             .where(or_(*[column != 0 for column in columns]))
             .order_by(col(WeekCounts.week).desc()))
    if weeks:
        query = query.limit(weeks)
    return weeks_oldest_first(session.execute(query))


def counted_subscriber_growth(session: Session, weeks: int | None = None) -> list[WeekGrowth]:
    """Per ISO week (Monday, UTC): sign-ups, imports, confirmations, unsubscribes and
    suppressions. A reader an import brought in counts as imported in the week of the import,
    whatever Mailchimp's times say, and nowhere else.

    Only weeks with some change are listed, oldest first; ``weeks`` keeps the most recent ones.
    """
    to_status = col(SubscriberChange.to_status)
    active = to_status == SubscriberStatus.ACTIVE.value
    here = not_(imported_here())
    series = {
        "new": _weekly_counts(session, col(Subscriber.created_at), signed_up_here()),
        "imported": _weekly_counts(session, col(SubscriberChange.at), active, imported_here()),
        "confirmed": _weekly_counts(session, col(SubscriberChange.at), active, here),
        "unsubscribed": _weekly_counts(session, col(SubscriberChange.at), here,
                                       to_status == SubscriberStatus.UNSUBSCRIBED.value),
        "suppressed": _weekly_counts(session, col(SubscriberChange.at), here, to_status.in_(
            [SubscriberStatus.BOUNCED.value, SubscriberStatus.COMPLAINED.value])),
    }
    week_keys = sorted(set().union(*series.values()))
    if weeks:
        week_keys = week_keys[-weeks:]
    return [
        WeekGrowth(date.fromisoformat(key), **{name: counts.get(key, 0)
                                               for name, counts in series.items()})
        for key in week_keys
    ]


__all__ = ["GROWTH_COLUMNS", "WeekGrowth", "counted_subscriber_growth",
           "counted_subscribers_by_status", "subscribers_by_status", "history", "imported_here", "list_subscribers",
           "signed_up_here", "subscriber_growth"]
