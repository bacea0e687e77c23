"""The counters a read-only command prints, read without SQLAlchemy when it can (issue 23 §B).

`mailer subscribers count` and `mailer stats --subscribers` at a million readers read two small
tables, ``subscriber_counts`` and ``week_counts``; what cost them a second was importing
SQLAlchemy, SQLModel and every model. Through
:func:`mailer.store.quick_read.read_if_current` the rows come from the standard library's
:mod:`sqlite3`; None means "take the full path" (PostgreSQL, no file, another schema revision,
an unreadable file), which reads the same rows through SQLAlchemy or says what is wrong.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date

from mailer.domain import SubscriberStatus
from mailer.store.quick_read import read_if_current

SUBSCRIBER_COUNTS = "SELECT status, n FROM subscriber_counts"
GROWTH_COLUMNS = ("new", "imported", "confirmed", "unsubscribed", "suppressed")
# week_counts' weeks with some change, newest first (the SQL subscriber_figures builds, written
# out for sqlite3)
_GROWTH = (f"SELECT week, {', '.join(GROWTH_COLUMNS)} FROM week_counts WHERE "
           f"{' OR '.join(f'{name} != 0' for name in GROWTH_COLUMNS)} ORDER BY week DESC")


@dataclass(frozen=True)
class WeekGrowth:
    week_start: date  # the Monday (UTC) the week begins
    new: int = 0  # sign-ups (the form, or by hand); imported readers are not
    imported: int = 0  # readers an import added as active
    confirmed: int = 0
    unsubscribed: int = 0
    suppressed: int = 0

    @property
    def net(self) -> int:
        return self.confirmed + self.imported - self.unsubscribed - self.suppressed

    def as_dict(self) -> dict:
        return {**asdict(self), "week_start": self.week_start.isoformat(), "net": self.net}


def weeks_oldest_first(rows_newest_first: Iterable[Sequence]) -> list[WeekGrowth]:
    """week_counts rows (week, then :data:`GROWTH_COLUMNS`), newest first, as WeekGrowth,
    oldest first."""
    return [WeekGrowth(date.fromisoformat(week), **dict(zip(GROWTH_COLUMNS, map(int, counts),
                                                             strict=True)))
            for week, *counts in list(rows_newest_first)[::-1]]


def every_status(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """(status, number) rows as every status in order, zero for one no row names."""
    counts = {str(status): int(n) for status, n in rows}
    return {status.value: counts.get(status.value, 0) for status in SubscriberStatus}


def subscribers_by_status_quickly(database_url: str) -> dict[str, int] | None:
    """:func:`mailer.reads.subscriber_figures.subscribers_by_status` straight from a current
    SQLite file, or None for the caller to ask that function."""
    return read_if_current(database_url,
                           lambda connection: every_status(connection.execute(SUBSCRIBER_COUNTS)))


def subscriber_growth_quickly(database_url: str,
                              weeks: int | None) -> tuple[list[WeekGrowth], dict[str, int]] | None:
    """(:func:`~mailer.reads.subscriber_figures.subscriber_growth`, the counts by status) from a
    current SQLite file, in one read transaction; None for the caller to ask those functions."""
    def read(connection: sqlite3.Connection) -> tuple[list[WeekGrowth], dict[str, int]]:
        rows = (connection.execute(_GROWTH + " LIMIT ?", (weeks,)) if weeks
                else connection.execute(_GROWTH))
        return weeks_oldest_first(rows), every_status(connection.execute(SUBSCRIBER_COUNTS))

    return read_if_current(database_url, read)
