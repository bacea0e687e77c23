"""Delivery stats of campaigns and issues: read-only queries over the ledger and the event log.

Every figure is aggregated in SQL (``GROUP BY``), so a campaign of 100,000 deliveries costs a few
index scans, never a Python loop over rows. The queries run unchanged on SQLite and PostgreSQL;
the few dialect differences (time buckets, the domain of an address) sit in
:mod:`mailer.reads.sql_figures`. The rates are defined once, in :mod:`mailer.figures` (bounce
rate = hard bounces ÷ sent, complaint rate = complaints ÷ delivered); their warnings are
:mod:`mailer.rate_warnings`; the list over time is :mod:`mailer.reads.subscriber_figures`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Mapped, Session
from sqlmodel import col
from sqlalchemy.sql.elements import ColumnElement

from mailer.domain import BounceType, DeliveryStatus, EventKind, SubscriberStatus
from mailer.errors import StoreError
from mailer.rate_warnings import RateWarning, bounce_warnings, complaint_warnings, rate_property
from mailer.store.link_counts import link_figures
from mailer.store.models import Campaign, CampaignCounts, Delivery, DeliveryEventRecord, SubscriberChange
from mailer.reads.send_figures import NOT_SIMULATOR, domain_rows, hard_bounce, minute_rows
from mailer.reads.sql_figures import count_where, engine_of

TOP_BOUNCE_REASONS = 10
TOP_DOMAINS = 20


@dataclass(frozen=True)
class CampaignStats:
    """The figures of one campaign (one send of one issue), or of several combined."""

    campaign_id: int | None
    issue_number: int
    subject: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    delivered: int = 0
    bounced: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    bounced_undetermined: int = 0
    complained: int = 0
    unsubscribed: int = 0  # recipients who unsubscribed after the campaign started

    # The rates of mailer.figures, the ones the reputation breaker pauses on: SES's bounce rate
    # counts hard bounces only, and only a delivered message can draw a complaint.
    bounce_rate = rate_property("bounced_hard")
    hard_bounce_rate = bounce_rate  # its older name in `stats --json` ("rates.hard_bounce")
    any_bounce_rate = rate_property("bounced")  # soft and undetermined bounces too
    complaint_rate = rate_property("complained", "delivered")
    delivery_rate = rate_property("delivered")
    unsubscribe_rate = rate_property("unsubscribed")

    @property
    def warnings(self) -> list[RateWarning]:
        return bounce_warnings(self.bounce_rate) + complaint_warnings(self.complaint_rate)

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("started_at", "finished_at"):
            data[key] = _iso(data[key])
        data["rates"] = {
            "delivery": self.delivery_rate,
            "bounce": self.bounce_rate,
            "hard_bounce": self.hard_bounce_rate,
            "any_bounce": self.any_bounce_rate,
            "complaint": self.complaint_rate,
            "unsubscribe": self.unsubscribe_rate,
        }
        data["warnings"] = [asdict(warning) for warning in self.warnings]
        return data


COUNT_FIELDS = tuple(f.name for f in fields(CampaignStats)
                     if f.type in ("int", int) and f.name != "issue_number")


@dataclass(frozen=True)
class BounceReason:
    bounce_type: str | None
    bounce_subtype: str | None
    diagnostic: str | None
    count: int


@dataclass(frozen=True, kw_only=True)
class RecipientCounts:
    """What became of the messages to one group of recipients (a domain, a mailbox provider)."""

    recipients: int
    sent: int
    delivered: int
    bounced: int
    bounced_hard: int
    complained: int

    bounce_rate = rate_property("bounced_hard")  # mailer.figures' bounce rate, as for a campaign


RECIPIENT_COUNTS = tuple(f.name for f in fields(RecipientCounts))


@dataclass(frozen=True)
class DomainStats(RecipientCounts):
    domain: str

    def as_dict(self) -> dict:
        # the domain first, as before the counts moved to their own class
        return {"domain": self.domain, **asdict(self), "bounce_rate": self.bounce_rate}


@dataclass(frozen=True)
class TimeBucket:
    start: datetime  # aware UTC, the first second of the minute
    sent: int


@dataclass(frozen=True)
class IssueDetail:
    summary: CampaignStats  # every campaign of the issue combined
    campaigns: list[CampaignStats]
    bounce_reasons: list[BounceReason] = field(default_factory=list)
    domains: list[DomainStats] = field(default_factory=list)
    timeline: list[TimeBucket] = field(default_factory=list)  # sent per minute, empty minutes left out
    links: list[dict] = field(default_factory=list)  # link counts (store.link_counts.link_figures)

    def as_dict(self) -> dict:
        return {
            "issue_number": self.summary.issue_number,
            "summary": self.summary.as_dict(),
            "campaigns": [c.as_dict() for c in self.campaigns],
            "bounce_reasons": [asdict(r) for r in self.bounce_reasons],
            "domains": [d.as_dict() for d in self.domains],
            "sent_per_minute": [{"minute": _iso(b.start), "sent": b.sent} for b in self.timeline],
            "links": list(self.links),
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


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
    campaign_columns = _campaign_columns()
    counts = [func.coalesce(getattr(CampaignCounts, name), 0).label(name) for name in COUNT_FIELDS]
    query = (
        select(*campaign_columns, *counts)
        .select_from(Campaign)
        .outerjoin(CampaignCounts, col(CampaignCounts.campaign_id) == col(Campaign.id))
        .order_by(col(Campaign.issue_number).desc(), col(Campaign.id).desc())
    )
    if issue_number is not None:
        query = query.where(col(Campaign.issue_number) == issue_number)
    return [
        CampaignStats(
            campaign_id=row["id"],
            issue_number=row["issue_number"],
            subject=row["subject"],
            status=str(row["status"]),
            started_at=row["started_at"] or row["created_at"],
            finished_at=row["finished_at"],
            **{name: int(row[name]) for name in COUNT_FIELDS},
        )
        for row in session.execute(query).mappings()
    ]


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
    return [
        CampaignStats(
            campaign_id=row["id"],
            issue_number=row["issue_number"],
            subject=row["subject"],
            status=str(row["status"]),
            started_at=row["started_at"] or row["created_at"],
            finished_at=row["finished_at"],
            unsubscribed=unsubscribed.get(row["id"], 0),
            **{name: int(row[name]) for name in COUNT_FIELDS if name != "unsubscribed"},
        )
        for row in rows
    ]


def combine(campaigns: list[CampaignStats]) -> CampaignStats:
    """The campaigns of one issue added up (a resend is its own campaign with its own rows)."""
    first = campaigns[-1]  # oldest: the list is newest first
    starts = [c.started_at for c in campaigns if c.started_at]
    ends = [c.finished_at for c in campaigns if c.finished_at]
    return CampaignStats(
        campaign_id=campaigns[0].campaign_id if len(campaigns) == 1 else None,
        issue_number=first.issue_number,
        subject=campaigns[0].subject,
        status=campaigns[0].status,
        started_at=min(starts) if starts else None,
        finished_at=max(ends) if ends and len(ends) == len(campaigns) else None,
        **{name: sum(getattr(c, name) for c in campaigns) for name in COUNT_FIELDS},
    )


# -- one issue in detail ----------------------------------------------------------------------


def bounce_reasons(session: Session, campaign_ids: list[int],
                   limit: int = TOP_BOUNCE_REASONS) -> list[BounceReason]:
    count = func.count(col(DeliveryEventRecord.id))
    query = (
        select(col(DeliveryEventRecord.bounce_type), col(DeliveryEventRecord.bounce_subtype),
               col(DeliveryEventRecord.diagnostic), count)
        .join(Delivery, col(Delivery.id) == col(DeliveryEventRecord.delivery_id))
        .where(col(Delivery.campaign_id).in_(campaign_ids),
               col(DeliveryEventRecord.kind) == EventKind.BOUNCE.value, NOT_SIMULATOR)
        .group_by(col(DeliveryEventRecord.bounce_type), col(DeliveryEventRecord.bounce_subtype),
                  col(DeliveryEventRecord.diagnostic))
        .order_by(count.desc(), col(DeliveryEventRecord.bounce_type),
                  col(DeliveryEventRecord.bounce_subtype))
        .limit(limit)
    )
    return [BounceReason(kind, subtype, diagnostic, int(n))
            for kind, subtype, diagnostic, n in session.execute(query)]


def domain_stats(session: Session, campaign_ids: list[int],
                 limit: int | None = TOP_DOMAINS) -> list[DomainStats]:
    """Per recipient domain, most recipients first. A finished send's rows and sent per domain
    are kept once counted (``send_figures``); delivered, bounced and complained come from the
    rows the events marked: neither reads every delivery of the issue."""
    return [DomainStats(name, **counts) for name, counts in domain_rows(session, campaign_ids, limit)]


def sent_per_minute(session: Session, campaign_ids: list[int]) -> list[TimeBucket]:
    """Rows sent per minute. A finished send's minutes do not change: they are counted once
    and kept (``send_figures``); a send still running is counted from its rows."""
    return [TimeBucket(datetime.fromisoformat(text).replace(tzinfo=UTC), n)
            for text, n in minute_rows(session, campaign_ids)]


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
