"""The counters a read-only command prints, read without SQLAlchemy when it can (issue 23 §B).

`mailer subscribers count` at a million readers is one small table, ``subscriber_counts``; what
cost it a second was importing SQLAlchemy, SQLModel and every model. Through
:func:`mailer.store.quick_read.read_if_current` the rows come from the standard library's
:mod:`sqlite3`; None means "take the full path" (PostgreSQL, no file, another schema revision,
an unreadable file), which reads the same rows through SQLAlchemy or says what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailer.domain import SubscriberStatus
from mailer.store.quick_read import read_if_current

SUBSCRIBER_COUNTS = "SELECT status, n FROM subscriber_counts"


def every_status(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """(status, number) rows as every status in order, zero for one no row names."""
    counts = {str(status): int(n) for status, n in rows}
    return {status.value: counts.get(status.value, 0) for status in SubscriberStatus}


def subscribers_by_status_quickly(database_url: str) -> dict[str, int] | None:
    """:func:`mailer.reads.subscriber_figures.subscribers_by_status` straight from a current
    SQLite file, or None for the caller to ask that function."""
    return read_if_current(database_url,
                           lambda connection: every_status(connection.execute(SUBSCRIBER_COUNTS)))
