"""The figures kept on write (issue 23 §1): ``mailer db recount`` rebuilds them from the rows.

``campaign_counts``, ``subscriber_counts`` and ``week_counts`` (migration 0013) are adjusted by
database triggers in the same transaction as every write to the ledger, the subscribers and
their history, so `mailer stats`, ``subscribers count`` and the console read a few rows instead
of counting the list. :func:`recount` counts every figure again from the rows with the
row-counting queries (``stats.counted_campaign_stats``, ``subscriber_reads.counted_*``), writes
them, and says what differed: nothing, unless a write bypassed the database's triggers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session
from sqlmodel import col

from mailer.store.models import CampaignCounts, SubscriberCounts, WeekCounts
from mailer.issue_figures import COUNT_FIELDS
from mailer.reads.delivery_figures import counted_campaign_stats
from mailer.reads.subscriber_figures import (
    GROWTH_COLUMNS,
    counted_subscriber_growth,
    counted_subscribers_by_status,
)

Figures = dict[str, dict[str, dict[str, int]]]  # table -> row key -> column -> value


@dataclass(frozen=True)
class CounterChange:
    table: str
    key: str  # the campaign id, the status or the week
    column: str
    before: int
    after: int


def counted_figures(session: Session) -> Figures:
    """Every counter's value counted from the rows."""
    return {
        "campaign_counts": {str(c.campaign_id): {name: getattr(c, name) for name in COUNT_FIELDS}
                            for c in counted_campaign_stats(session)},
        "subscriber_counts": {status: {"n": n}
                              for status, n in counted_subscribers_by_status(session).items()},
        "week_counts": {week.week_start.isoformat(): {name: getattr(week, name)
                                                      for name in GROWTH_COLUMNS}
                        for week in counted_subscriber_growth(session)},
    }


def stored_figures(session: Session) -> Figures:
    """Every counter's value as stored."""
    campaign_columns = [getattr(CampaignCounts, name) for name in COUNT_FIELDS]
    week_columns = [getattr(WeekCounts, name) for name in GROWTH_COLUMNS]
    return {
        "campaign_counts": {
            str(key): dict(zip(COUNT_FIELDS, map(int, values), strict=True))
            for key, *values in session.execute(select(col(CampaignCounts.campaign_id),
                                                       *campaign_columns))},
        "subscriber_counts": {
            str(key): {"n": int(n)}
            for key, n in session.execute(select(col(SubscriberCounts.status),
                                                 col(SubscriberCounts.n)))},
        "week_counts": {
            str(key): dict(zip(GROWTH_COLUMNS, map(int, values), strict=True))
            for key, *values in session.execute(select(col(WeekCounts.week), *week_columns))},
    }


def differences(stored: Figures, counted: Figures) -> list[CounterChange]:
    """What differs, a missing row reading as zeros (a week or status nothing counts)."""
    changes = []
    for table in counted:
        rows_before, rows_after = stored.get(table, {}), counted[table]
        for key in sorted(set(rows_before) | set(rows_after)):
            before, after = rows_before.get(key, {}), rows_after.get(key, {})
            for column in sorted(set(before) | set(after)):
                old, new = before.get(column, 0), after.get(column, 0)
                if old != new:
                    changes.append(CounterChange(table, key, column, old, new))
    return changes


def _lock_counters(session: Session) -> None:
    """Hold the counters while counting, so no write lands between the count and its storing:
    on PostgreSQL every trigger waits at the counter tables; on SQLite, taking the write lock
    first makes the count and the write one snapshot."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE campaign_counts, subscriber_counts, week_counts "
                             "IN EXCLUSIVE MODE"))
    else:
        session.execute(text("DELETE FROM subscriber_counts WHERE 0"))


def recount(session: Session) -> list[CounterChange]:
    """Count every figure from the rows and store it; returns what changed. The caller
    commits (one transaction: the counters are never half rebuilt)."""
    _lock_counters(session)
    counted = counted_figures(session)
    changes = differences(stored_figures(session), counted)
    session.execute(delete(CampaignCounts))
    session.execute(delete(SubscriberCounts))
    session.execute(delete(WeekCounts))
    rows: dict[str, list[dict[str, int | str]]] = {
        "campaign_counts": [{"campaign_id": int(key), **values}
                            for key, values in counted["campaign_counts"].items()],
        "subscriber_counts": [{"status": key, **values}
                              for key, values in counted["subscriber_counts"].items()],
        "week_counts": [{"week": key, **values}
                        for key, values in counted["week_counts"].items()]}
    for model, table_rows in ((CampaignCounts, rows["campaign_counts"]),
                              (SubscriberCounts, rows["subscriber_counts"]),
                              (WeekCounts, rows["week_counts"])):
        if table_rows:
            session.execute(insert(model), table_rows)
    return changes


__all__ = ["CounterChange", "counted_figures", "differences", "recount", "stored_figures"]
