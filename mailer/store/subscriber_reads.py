"""The list, read only: how many subscribers are in each status, who they are, one
subscriber's consent record, and how the list grew week by week.

Changes go through :mod:`mailer.store.subscribers`; nothing here writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.domain import SubscriberStatus
from mailer.store.models import Subscriber, SubscriberChange
from mailer.store.sql_figures import week_bucket
from mailer.store.subscribers import require_subscriber


def count_by_status(session: Session) -> dict[str, int]:
    """How many subscribers are in each status now (every status present, zero when none)."""
    query = select(Subscriber.status, func.count(Subscriber.id)).group_by(Subscriber.status)
    counts = {str(status): int(n) for status, n in session.execute(query)}
    return {status.value: counts.get(status.value, 0) for status in SubscriberStatus}


def list_subscribers(session: Session, *, status: SubscriberStatus | None = None,
                     limit: int | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def history(session: Session, raw_email: str) -> tuple[Subscriber, list[SubscriberChange]]:
    """A subscriber and its changes, oldest first: the consent record."""
    subscriber = require_subscriber(session, raw_email)
    changes = session.execute(
        select(SubscriberChange).where(SubscriberChange.subscriber_id == subscriber.id)
        .order_by(SubscriberChange.at, SubscriberChange.id)).scalars().all()
    return subscriber, list(changes)


# -- the list over time -----------------------------------------------------------------------


@dataclass(frozen=True)
class WeekGrowth:
    week_start: date  # the Monday (UTC) the week begins
    new: int = 0
    confirmed: int = 0
    unsubscribed: int = 0
    suppressed: int = 0

    @property
    def net(self) -> int:
        return self.confirmed - self.unsubscribed - self.suppressed

    def as_dict(self) -> dict:
        return {**asdict(self), "week_start": self.week_start.isoformat(), "net": self.net}


def _weekly_counts(session: Session, column, *conditions) -> dict[str, int]:
    week = week_bucket(session, column).label("week")
    query = select(week, func.count()).where(*conditions).group_by(week)
    return {str(key): int(n) for key, n in session.execute(query)}


def subscriber_growth(session: Session, weeks: int | None = None) -> list[WeekGrowth]:
    """Per ISO week (Monday, UTC): sign-ups, confirmations, unsubscribes and suppressions.

    Only weeks with some change are listed, oldest first; ``weeks`` keeps the most recent ones.
    """
    to_status = SubscriberChange.to_status
    series = {
        "new": _weekly_counts(session, Subscriber.created_at),
        "confirmed": _weekly_counts(session, SubscriberChange.at,
                                    to_status == SubscriberStatus.ACTIVE.value),
        "unsubscribed": _weekly_counts(session, SubscriberChange.at,
                                       to_status == SubscriberStatus.UNSUBSCRIBED.value),
        "suppressed": _weekly_counts(session, SubscriberChange.at, to_status.in_(
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


__all__ = ["WeekGrowth", "count_by_status", "history", "list_subscribers", "subscriber_growth"]
