"""Delivery stats of campaigns and issues: read-only queries over the ledger and the event log.

Every figure is aggregated in SQL (``GROUP BY``), so a campaign of 100,000 deliveries costs a few
index scans, never a Python loop over rows. The queries run unchanged on SQLite and PostgreSQL;
the few dialect differences (time buckets, the domain of an address) sit in
:mod:`mailer.reads.sql_figures`. The rates are defined once, in :mod:`mailer.figures` (bounce
rate = hard bounces ÷ sent, complaint rate = complaints ÷ delivered); their warnings are
:mod:`mailer.rate_warnings`; the list over time is :mod:`mailer.reads.subscriber_figures`.
"""

from __future__ import annotations


from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Mapped, Session
from sqlmodel import col
from sqlalchemy.sql.elements import ColumnElement

from mailer.domain import BounceType, DeliveryStatus, SubscriberStatus
from mailer.errors import StoreError
from mailer.issue_figures import (
    RECIPIENT_COUNTS,
    BounceReason,
    CampaignStats,
    DomainStats,
    IssueDetail,
    RecipientCounts,
    TimeBucket,
    TOP_BOUNCE_REASONS,
    TOP_DOMAINS,
    bounce_reasons_of,
    campaign_from_row,
    combine,
    domain_figures,
    time_buckets,
)
from mailer.store.link_counts import link_figures
from mailer.store.models import Campaign, Delivery, SubscriberChange, table_of
from mailer.reads import issue_sql
from mailer.reads.quick_counts import CAMPAIGN_TIMES, campaign_rows_sql
from mailer.reads.send_figures import NOT_SIMULATOR, domain_rows, hard_bounce, minute_rows
from mailer.reads.sql_figures import count_where, engine_of



# -- per-campaign figures ---------------------------------------------------------------------


def _delivery_counts() -> list[ColumnElement]:
    status = col(Delivery.status)
    return [
        func.count(col(Delivery.id)).label("recipients"),
        count_where(status == DeliveryStatus.QUEUED.value).label("queued"),
        count_where(status == DeliveryStatus.SENDING.value).label("sending"),
        count_where(status == DeliveryStatus.SENT.value).label("sent"),
        count_where(status == DeliveryStatus.FAILED.value).label("failed"),
        count_where(status == DeliveryStatus.SKIPPED.value).label("skipped"),
        count_where(status == DeliveryStatus.UNKNOWN.value).label("unknown"),
        count_where(col(Delivery.delivered_at).is_not(None)).label("delivered"),
        count_where(col(Delivery.bounced_at).is_not(None)).label("bounced"),
        count_where(hard_bounce()).label("bounced_hard"),
        count_where(and_(col(Delivery.bounced_at).is_not(None),
                          col(Delivery.bounce_type) == BounceType.TRANSIENT.value)
                     ).label("bounced_soft"),
        count_where(and_(col(Delivery.bounced_at).is_not(None),
                          or_(col(Delivery.bounce_type).is_(None),
                              col(Delivery.bounce_type) == BounceType.UNDETERMINED.value))
                     ).label("bounced_undetermined"),
        count_where(col(Delivery.complained_at).is_not(None)).label("complained"),
    ]


def _unsubscribed_after(session: Session, campaign_ids: list[int]) -> dict[int, int]:
    """Recipients of each campaign who moved to ``unsubscribed`` after it started."""
    if not campaign_ids:
        return {}
    campaign_start = func.coalesce(col(Campaign.started_at), col(Campaign.created_at))
    query = (
        select(col(Delivery.campaign_id), func.count(func.distinct(col(Delivery.subscriber_id))))
        .join(Campaign, col(Campaign.id) == col(Delivery.campaign_id))
        .join(SubscriberChange, and_(
            col(SubscriberChange.subscriber_id) == col(Delivery.subscriber_id),
            col(SubscriberChange.to_status) == SubscriberStatus.UNSUBSCRIBED.value,
            col(SubscriberChange.at) >= campaign_start,
        ))
        .where(col(Delivery.campaign_id).in_(campaign_ids))
        .group_by(col(Delivery.campaign_id))
    )
    return {campaign_id: int(count) for campaign_id, count in session.execute(query)}


def _campaign_columns() -> list[Mapped[object]]:
    """The campaign's own columns each row of :func:`campaign_stats` starts with."""
    return [col(Campaign.id), col(Campaign.issue_number), col(Campaign.subject),
            col(Campaign.status), col(Campaign.started_at), col(Campaign.created_at),
            col(Campaign.finished_at)]


def campaign_stats(session: Session, issue_number: int | None = None) -> list[CampaignStats]:
    """One row per campaign, newest issue first; only that issue's campaigns when given.

    Read from ``campaign_counts`` (kept on write, migration 0013): one row per campaign
    whatever the size of its ledger. :func:`counted_campaign_stats` counts the same from the
    rows, for ``mailer db recount``."""
    campaign = table_of(Campaign)
    query = text(campaign_rows_sql(one_issue=issue_number is not None)).columns(
        # the times as the model reads them (SQLite keeps them as text; aware, in UTC)
        **{name: campaign.c[name].type for name in CAMPAIGN_TIMES})
    rows = session.execute(query, {"issue": issue_number} if issue_number is not None else {})
    return [campaign_from_row(row) for row in rows.mappings()]


def counted_campaign_stats(session: Session,
                           issue_number: int | None = None) -> list[CampaignStats]:
    """:func:`campaign_stats` counted from the ledger rows (the recount and its benchmark)."""
    campaign_columns = _campaign_columns()
    query = (
        select(*campaign_columns, *_delivery_counts())
        .select_from(Campaign)
        .outerjoin(Delivery, (col(Delivery.campaign_id) == col(Campaign.id)) & NOT_SIMULATOR)
        .group_by(*campaign_columns)
        .order_by(col(Campaign.issue_number).desc(), col(Campaign.id).desc())
    )
    if issue_number is not None:
        query = query.where(col(Campaign.issue_number) == issue_number)
    rows = session.execute(query).mappings().all()
    unsubscribed = _unsubscribed_after(session, [row["id"] for row in rows])
    return [campaign_from_row({**row, "unsubscribed": unsubscribed.get(row["id"], 0)})
            for row in rows]


# -- one issue in detail ----------------------------------------------------------------------


def bounce_reasons(session: Session, campaign_ids: list[int],
                   limit: int = TOP_BOUNCE_REASONS) -> list[BounceReason]:
    """The campaigns' bounce reasons, most frequent first (:func:`issue_sql.bounce_reasons`,
    the text `stats --issue` also reads through sqlite3)."""
    if not campaign_ids:
        return []
    sql, params = issue_sql.bounce_reasons(campaign_ids, limit)
    return bounce_reasons_of(session.execute(text(sql), params))


def domain_stats(session: Session, campaign_ids: list[int],
                 limit: int | None = TOP_DOMAINS) -> list[DomainStats]:
    """Per recipient domain, most recipients first. A finished send's rows and sent per domain
    are kept once counted (``send_figures``); delivered, bounced and complained come from the
    rows the events marked: neither reads every delivery of the issue."""
    return domain_figures(domain_rows(session, campaign_ids, limit))


def sent_per_minute(session: Session, campaign_ids: list[int]) -> list[TimeBucket]:
    """Rows sent per minute. A finished send's minutes do not change: they are counted once
    and kept (``send_figures``); a send still running is counted from its rows."""
    return time_buckets(minute_rows(session, campaign_ids))


def issue_detail(session: Session, issue_number: int) -> IssueDetail:
    campaigns = campaign_stats(session, issue_number)
    if not campaigns:
        raise StoreError(f"issue {issue_number} has not been sent: no campaign in the database")
    ids = [c.campaign_id for c in campaigns if c.campaign_id is not None]
    return IssueDetail(
        summary=combine(campaigns),
        campaigns=campaigns,
        bounce_reasons=bounce_reasons(session, ids),
        domains=domain_stats(session, ids),
        timeline=sent_per_minute(session, ids),
        links=link_figures(engine_of(session), issue_number),
    )


__all__ = [
    "RECIPIENT_COUNTS", "BounceReason", "CampaignStats", "DomainStats", "IssueDetail",
    "RecipientCounts", "TimeBucket", "bounce_reasons", "campaign_stats", "combine",
    "counted_campaign_stats",
    "domain_stats", "issue_detail", "sent_per_minute",
]
