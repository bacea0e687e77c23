"""The list week by week, as the overview shows it (``list_health.list_weeks``), with the closed
weeks kept (migration 0017) so a read counts this week's rows, not half a year of the list.

A closed week's figures change only when a row of it is written: a history row dated in it
(an import carrying old times), a reader who signed up in it and leaves ``pending`` (confirms,
or is suppressed) or returns to it, a reader added with a sign-up time in it, or an erasure.
Every status change writes a history row, every new reader a subscriber row, both under a new
id, and an erasure adds a forgotten address. So the kept weeks carry a mark (the newest ids,
how many rows sat just below them, the erasures), and a read looks only at the rows written
since: the weeks they touch are counted again, alone; an erasure counts every week again.
A write that changes a reader's sign-up time, source or status without a history row would
go unseen: mailer makes none (the consent record needs the history row).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, delete, func, insert, or_, select, union
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlmodel import col

from mailer.domain import SubscriberStatus
from mailer.store.models import (
    ForgottenAddress,
    Subscriber,
    SubscriberChange,
    WeekFigures,
    WeekFiguresMark,
)
from mailer.reads.sql_figures import (
    EVENT_SLACK,
    count_where,
    engine_of,
    newest_and_tail,
    tail_below,
    week_bucket,
)
from mailer.reads.subscriber_figures import imported_here, signed_up_here

# subscriber_change.to_status → the ListWeek field counting arrivals in that status
STATUS_SERIES = {SubscriberStatus.ACTIVE.value: "confirmed",
                 SubscriberStatus.UNSUBSCRIBED.value: "unsubscribed",
                 SubscriberStatus.BOUNCED.value: "bounced",
                 SubscriberStatus.COMPLAINED.value: "complained"}
SIGNUP_SOURCE = "web"  # the public form: its confirmation rate falls when it is abused
CHANGE_SERIES = (*STATUS_SERIES.values(), "imported", "net")
SIGNUP_SERIES = ("new", "signups", "signups_confirmed", "signups_pending")
WEEK_SERIES = (*CHANGE_SERIES, *SIGNUP_SERIES)
MARK_ID = 1

Series = dict[str, dict[str, int]]  # series name -> week (its Monday, YYYY-MM-DD) -> count


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- counted from the rows ----------------------------------------------------------------------


def _change_series(session: Session, since: datetime, until: datetime | None) -> Series:
    """One pass over the window's status changes: per week, arrivals in each status, readers
    imported, and the net change of the active list.

    An import's own rows count as "imported" (when active) and in no other series: a reader
    who left Mailchimp years ago did not unsubscribe from this list this week."""
    week = week_bucket(session, col(SubscriberChange.at)).label("week")
    left_active = (col(SubscriberChange.from_status) == SubscriberStatus.ACTIVE.value).label("left")
    imported = imported_here().label("imported")
    window = [col(SubscriberChange.at) >= since] + ([col(SubscriberChange.at) < until] if until else [])
    query = (select(week, col(SubscriberChange.to_status), left_active, imported, func.count())
             .where(*window)
             .group_by(week, col(SubscriberChange.to_status), left_active, imported))
    series: Series = {name: {} for name in CHANGE_SERIES}
    for key, to_status, left, by_import, n in session.execute(query):
        key, n = str(key), int(n)
        name = _arrival_series(str(to_status), bool(by_import))
        if name:
            series[name][key] = series[name].get(key, 0) + n
        delta = (n if str(to_status) == SubscriberStatus.ACTIVE.value else 0) - (n if left else 0)
        series["net"][key] = series["net"].get(key, 0) + delta
    return series


def _arrival_series(to_status: str, by_import: bool) -> str | None:
    if by_import:
        return "imported" if to_status == SubscriberStatus.ACTIVE.value else None
    return STATUS_SERIES.get(to_status)


def _signup_series(session: Session, since: datetime, until: datetime | None) -> Series:
    """Per week: new readers (not imported ones), and the sign-ups through the form: confirmed,
    still pending."""
    week = week_bucket(session, col(Subscriber.created_at)).label("week")
    form = col(Subscriber.source) == SIGNUP_SOURCE
    window = [col(Subscriber.created_at) >= since] + ([col(Subscriber.created_at) < until] if until else [])
    query = (select(week, count_where(signed_up_here()), count_where(form),
                    count_where(and_(form, col(Subscriber.confirmed_at).is_not(None))),
                    count_where(and_(form, col(Subscriber.status) == SubscriberStatus.PENDING.value)))
             .where(*window)
             .group_by(week))
    series: Series = {name: {} for name in SIGNUP_SERIES}
    for key, *counts in session.execute(query):
        for name, n in zip(SIGNUP_SERIES, counts, strict=True):
            series[name][str(key)] = int(n)
    return series


def counted_series(session: Session, since: datetime, until: datetime | None = None) -> Series:
    """Every series of the weeks from ``since`` (a Monday) to ``until`` (or now), from the rows."""
    return {**_change_series(session, since, until), **_signup_series(session, since, until)}


# -- the closed weeks, kept ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    change_id: int = 0
    change_tail: int = 0
    subscriber_id: int = 0
    subscriber_tail: int = 0
    forgotten: int = 0


def _current_mark(session: Session) -> Mark:
    change_id, change_tail = newest_and_tail(session, col(SubscriberChange.id))
    subscriber_id, subscriber_tail = newest_and_tail(session, col(Subscriber.id))
    forgotten = int(session.execute(select(func.count()).select_from(ForgottenAddress))
                    .scalar_one())
    return Mark(change_id, change_tail, subscriber_id, subscriber_tail, forgotten)


def _stored_mark(session: Session) -> Mark | None:
    row = session.get(WeekFiguresMark, MARK_ID)
    return None if row is None else Mark(row.change_id, row.change_tail, row.subscriber_id,
                                         row.subscriber_tail, row.forgotten)


def _after(session: Session, column, newest: int, tail: int) -> int:
    """The id after which rows are new since ``newest`` was seen: further back when a row has
    committed late just below it since."""
    return newest - EVENT_SLACK if tail_below(session, column, newest) != tail else newest


def touched_weeks(session: Session, mark: Mark) -> set[str]:
    """The weeks whose figures the rows written since ``mark`` may have changed."""
    after_change = _after(session, col(SubscriberChange.id), mark.change_id, mark.change_tail)
    after_subscriber = _after(session, col(Subscriber.id), mark.subscriber_id, mark.subscriber_tail)
    pending = SubscriberStatus.PENDING.value
    dated = select(week_bucket(session, col(SubscriberChange.at)).label("week")).where(
        col(SubscriberChange.id) > after_change)
    signed_up = (select(week_bucket(session, col(Subscriber.created_at)).label("week"))
                 .join(SubscriberChange, col(SubscriberChange.subscriber_id) == col(Subscriber.id))
                 .where(col(SubscriberChange.id) > after_change,
                        or_(col(SubscriberChange.from_status) == pending,
                            col(SubscriberChange.to_status) == pending)))
    added = select(week_bucket(session, col(Subscriber.created_at)).label("week")).where(
        col(Subscriber.id) > after_subscriber)
    return {str(week) for week in session.execute(union(dated, signed_up, added)).scalars()}


def _kept(session: Session, weeks: list[str]) -> Series:
    columns = [getattr(WeekFigures, name) for name in WEEK_SERIES]
    series: Series = {name: {} for name in WEEK_SERIES}
    for week, *counts in session.execute(select(col(WeekFigures.week), *columns)
                                         .where(col(WeekFigures.week).in_(weeks))):
        for name, n in zip(WEEK_SERIES, counts, strict=True):
            series[name][week] = int(n)
    return series


def closed_weeks(session: Session, weeks: list[str]) -> Series:
    """Every series of ``weeks`` (Mondays of weeks that are over, oldest first): the kept
    figures, after counting again (and keeping) those never kept or touched since."""
    if not weeks:
        return {name: {} for name in WEEK_SERIES}
    mark, stored = _current_mark(session), _stored_mark(session)
    kept = _kept(session, weeks)
    have = set(kept["net"])
    if stored is None or stored.forgotten != mark.forgotten:
        stale = set(weeks)  # an erasure took rows out of weeks nobody can name any more
    else:
        stale = (set(weeks) - have) | (touched_weeks(session, stored) & set(weeks))
    if not stale:
        return kept
    first, last = min(stale), max(stale)
    counted = counted_series(session, _midnight(date.fromisoformat(first)),
                             _midnight(date.fromisoformat(last) + timedelta(weeks=1)))
    for name in WEEK_SERIES:
        kept[name] = {week: n for week, n in kept[name].items() if week not in stale}
        kept[name].update({week: n for week, n in counted[name].items() if week in stale})
    _keep(session, sorted(stale), counted, mark)
    return kept


def _keep(session: Session, weeks: list[str], counted: Series, mark: Mark) -> None:
    """Keep the weeks just counted and the mark read before counting (a row written meanwhile
    is after it, and looked at next time). Nothing is kept when the database takes no write
    (a read-only file, a lock held too long): the next read counts again."""
    rows = [{"week": week, **{name: counted[name].get(week, 0) for name in WEEK_SERIES}}
            for week in weeks]
    try:
        # its own short transaction, as reads.send_figures.keep: the reading session may not write
        with engine_of(session).connect() as connection, connection.begin():
            connection.execute(delete(WeekFigures).where(col(WeekFigures.week).in_(weeks)))
            connection.execute(insert(WeekFigures), rows)
            connection.execute(delete(WeekFiguresMark))
            values = dict(zip(("change_id", "change_tail", "subscriber_id", "subscriber_tail",
                               "forgotten"), astuple(mark), strict=True))
            connection.execute(insert(WeekFiguresMark), [{"id": MARK_ID, **values}])
    except OperationalError:
        return


def keep_weeks_again(session: Session, first: date, this_monday: date) -> None:
    """Count the closed weeks from ``first`` to this one's again and keep them, whatever was
    kept (``mailer db recount``): the first read afterwards finds them kept."""
    closed = [(first + timedelta(weeks=n)).isoformat()
              for n in range((this_monday - first).days // 7)]
    # no mark: every week counts as touched since (closed_weeks counts them all again)
    session.execute(delete(WeekFiguresMark))
    session.commit()
    closed_weeks(session, closed)


def week_series(session: Session, first: date, this_monday: date) -> Series:
    """Every series of the weeks from ``first`` to this one: the closed weeks kept, this week
    counted from its rows."""
    closed = [(first + timedelta(weeks=n)).isoformat()
              for n in range((this_monday - first).days // 7)]
    series = closed_weeks(session, closed)
    current = counted_series(session, _midnight(this_monday))
    return {name: {**series[name], **current[name]} for name in WEEK_SERIES}


__all__ = ["SIGNUP_SOURCE", "STATUS_SERIES", "WEEK_SERIES", "closed_weeks", "counted_series",
           "keep_weeks_again", "touched_weeks", "week_series"]
