"""The figures a read-only command prints, read without SQLAlchemy when it can (issue 23).

`mailer subscribers count`, `mailer stats --subscribers`, `mailer stats` and `stats --issue` of
a finished send read a few small tables (the counters, the kept breakdowns); at a million
readers what cost them most of a second was importing SQLAlchemy, SQLModel and every model.
Through :func:`mailer.store.quick_read.read_if_current` the rows come from the standard
library's :mod:`sqlite3` or from psycopg alone, with the same SQL texts the store's path runs
(here, :mod:`mailer.reads.issue_sql`, :mod:`mailer.store.link_sql`), built into the same values
(:mod:`mailer.issue_figures`). None means "take the full path" (no database, another schema
revision, a send still running, a paused campaign, any driver error), which reads the same
rows through SQLAlchemy or says what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from mailer.domain import CampaignStatus, SubscriberStatus
from mailer.issue_figures import (
    COUNT_FIELDS,
    TOP_BOUNCE_REASONS,
    TOP_DOMAINS,
    CampaignStats,
    IssueDetail,
    bounce_reasons_of,
    campaign_from_row,
    combine,
    domain_figures,
    time_buckets,
)
from mailer.reads import issue_sql
from mailer.store.link_sql import LINK_FIGURES, link_figures_of
from mailer.store.quick_read import QuickConnection, read_if_current

SUBSCRIBER_COUNTS = "SELECT status, n FROM subscriber_counts"
# Every campaign with its counters (kept on write), newest issue first: the one query of
# ``mailer stats`` and of :func:`mailer.reads.delivery_figures.campaign_stats` (which adds
# ``WHERE c.issue_number = :issue`` for one issue); rows for issue_figures.campaign_from_row
CAMPAIGN_TIMES = ("started_at", "created_at", "finished_at")
_CAMPAIGN_ROWS = (
    "SELECT c.id, c.issue_number, c.subject, c.status, "
    + ", ".join(f"c.{name}" for name in CAMPAIGN_TIMES) + ", "
    + ", ".join(f"coalesce(k.{name}, 0) AS {name}" for name in COUNT_FIELDS)
    + " FROM campaign c LEFT OUTER JOIN campaign_counts k ON k.campaign_id = c.id{where} "
    "ORDER BY c.issue_number DESC, c.id DESC")


def campaign_rows_sql(one_issue: bool = False) -> str:
    """The campaigns-with-counters query; ``one_issue`` adds the ``:issue`` filter."""
    return _CAMPAIGN_ROWS.format(where=" WHERE c.issue_number = :issue" if one_issue else "")
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
    def read(connection: QuickConnection) -> tuple[list[WeekGrowth], dict[str, int]]:
        rows = (connection.execute(_GROWTH + " LIMIT :weeks", {"weeks": weeks}) if weeks
                else connection.execute(_GROWTH))
        return weeks_oldest_first(rows), every_status(connection.execute(SUBSCRIBER_COUNTS))

    return read_if_current(database_url, read)


def _utc(value: str | datetime | None) -> datetime | None:
    """A time as the models read it back (sqlmodel's UTCDateTime: aware, in UTC), from what a
    driver gives: SQLite's text ("YYYY-MM-DD HH:MM:SS.ffffff", UTC without an offset), or
    psycopg's datetime."""
    if not value:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


def _campaigns(connection: QuickConnection, issue: int | None = None) -> list[CampaignStats]:
    params = {"issue": issue} if issue is not None else {}
    cursor = connection.execute(campaign_rows_sql(issue is not None), params)
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor]
    return [campaign_from_row({**row, **{name: _utc(row[name]) for name in CAMPAIGN_TIMES}})
            for row in rows]


def campaigns_quickly(database_url: str) -> list[CampaignStats] | None:
    """:func:`mailer.reads.delivery_figures.campaign_stats` of every campaign, straight from a
    current SQLite file; None for the caller to ask that function, also when a campaign is
    paused (its reason is read through the store)."""
    campaigns = read_if_current(database_url, _campaigns)
    if campaigns is None or any(c.status == CampaignStatus.PAUSED for c in campaigns):
        return None
    return campaigns


def _keys(connection: QuickConnection, table: str, ids: list[int]) -> dict[int, tuple[int, ...]]:
    return issue_sql.key_rows(connection.execute(*issue_sql.status_keys(table, ids)))


def _issue(connection: QuickConnection, number: int) -> IssueDetail | None:
    campaigns = _campaigns(connection, number)
    ids = [c.campaign_id for c in campaigns if c.campaign_id is not None]
    if not ids or any(c.status == CampaignStatus.PAUSED for c in campaigns):
        return None  # no such issue (the store's path says so), or a pause to explain
    counters, kept = _keys(connection, "campaign_counts", ids), _keys(connection, "send_figures", ids)
    if issue_sql.holding(ids, counters, kept) != set(ids):
        return None  # a send still running, or one not kept since its counters moved
    reasons_sql, reasons_params = issue_sql.bounce_reasons(ids, TOP_BOUNCE_REASONS)
    domains_sql, domains_params = issue_sql.held_domains(connection.dialect, ids, TOP_DOMAINS)
    minutes_sql, minutes_params = issue_sql.kept_minutes(ids)
    return IssueDetail(
        summary=combine(campaigns),
        campaigns=campaigns,
        bounce_reasons=bounce_reasons_of(connection.execute(reasons_sql, reasons_params)),
        domains=domain_figures(issue_sql.add_up_domains(
            connection.execute(domains_sql, domains_params), TOP_DOMAINS)),
        timeline=time_buckets(issue_sql.add_up_minutes(
            connection.execute(minutes_sql, minutes_params))),
        links=link_figures_of(connection.execute(LINK_FIGURES, {"issue": number})),
    )


def issue_quickly(database_url: str, number: int) -> IssueDetail | None:
    """:func:`mailer.reads.delivery_figures.issue_detail` of an issue whose sends are over and
    whose breakdowns are kept, straight from a current SQLite file; None for the caller to
    ask that function (another database, a send still running or not kept yet, a paused
    campaign, no such issue)."""
    return read_if_current(database_url, lambda connection: _issue(connection, number))
