"""Delivery stats: read-only queries over the ledger, the event log and the subscriber history.

Every figure is aggregated in SQL (``GROUP BY``), so a campaign of 100,000 deliveries costs a few
index scans, never a Python loop over rows. The queries run unchanged on SQLite and PostgreSQL;
the few dialect differences (time buckets, the domain of an address) sit in small helpers.

Rates are fractions (0.05 = 5 %) and ``None`` when nothing was sent yet, so a script never divides
by zero and never mistakes "no data" for "0 %".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mailer.domain import BounceType, DeliveryStatus, EventKind, SubscriberStatus
from mailer.errors import StoreError
from mailer.store.models import Campaign, Delivery, DeliveryEventRecord, Subscriber, SubscriberChange
from mailer.wire import SIMULATOR_DOMAIN

# SES puts an account under review at a 5 % bounce rate and may pause it at 10 %; complaints:
# 0.1 % review, 0.5 % pause. Gmail wants spam complaints under 0.3 %. We warn at half the review
# line, while there is still time to clean the list.
BOUNCE_REVIEW = 0.05
BOUNCE_PAUSE = 0.10
COMPLAINT_REVIEW = 0.001
COMPLAINT_PAUSE = 0.005
GMAIL_SPAM_LINE = 0.003
EARLY_WARNING_SHARE = 0.5

TOP_BOUNCE_REASONS = 10
TOP_DOMAINS = 20


@dataclass(frozen=True)
class RateWarning:
    code: str  # stable: bounce_near_review, bounce_review, bounce_pause, complaint_..., gmail_spam
    level: str  # "warning" (act soon) or "critical" (SES or Gmail acts on it)
    message: str


def _percent(rate: float) -> str:
    return f"{rate * 100:.2f} %".replace(".00 %", " %")


def bounce_warnings(rate: float | None) -> list[RateWarning]:
    if rate is None:
        return []
    if rate >= BOUNCE_PAUSE:
        return [RateWarning("bounce_pause", "critical",
                            f"bounce rate {_percent(rate)} is at or above SES's "
                            f"{_percent(BOUNCE_PAUSE)} line where sending may be paused")]
    if rate >= BOUNCE_REVIEW:
        return [RateWarning("bounce_review", "critical",
                            f"bounce rate {_percent(rate)} is at or above SES's "
                            f"{_percent(BOUNCE_REVIEW)} review threshold")]
    if rate >= BOUNCE_REVIEW * EARLY_WARNING_SHARE:
        return [RateWarning("bounce_near_review", "warning",
                            f"bounce rate {_percent(rate)} nears SES's "
                            f"{_percent(BOUNCE_REVIEW)} review threshold")]
    return []


def complaint_warnings(rate: float | None) -> list[RateWarning]:
    if rate is None:
        return []
    warnings: list[RateWarning] = []
    if rate >= COMPLAINT_PAUSE:
        warnings.append(RateWarning("complaint_pause", "critical",
                                    f"complaint rate {_percent(rate)} is at or above SES's "
                                    f"{_percent(COMPLAINT_PAUSE)} line where sending may be paused"))
    elif rate >= COMPLAINT_REVIEW:
        warnings.append(RateWarning("complaint_review", "critical",
                                    f"complaint rate {_percent(rate)} is at or above SES's "
                                    f"{_percent(COMPLAINT_REVIEW)} review threshold"))
    elif rate >= COMPLAINT_REVIEW * EARLY_WARNING_SHARE:
        warnings.append(RateWarning("complaint_near_review", "warning",
                                    f"complaint rate {_percent(rate)} nears SES's "
                                    f"{_percent(COMPLAINT_REVIEW)} review threshold"))
    if rate >= GMAIL_SPAM_LINE:
        warnings.append(RateWarning("gmail_spam", "critical",
                                    f"complaint rate {_percent(rate)} is at or above Gmail's "
                                    f"{_percent(GMAIL_SPAM_LINE)} spam-rate line"))
    return warnings


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


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

    @property
    def bounce_rate(self) -> float | None:
        return _rate(self.bounced, self.sent)

    @property
    def hard_bounce_rate(self) -> float | None:
        return _rate(self.bounced_hard, self.sent)

    @property
    def complaint_rate(self) -> float | None:
        return _rate(self.complained, self.sent)

    @property
    def delivery_rate(self) -> float | None:
        return _rate(self.delivered, self.sent)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _rate(self.unsubscribed, self.sent)

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


@dataclass(frozen=True)
class DomainStats:
    domain: str
    recipients: int
    sent: int
    delivered: int
    bounced: int
    complained: int

    @property
    def bounce_rate(self) -> float | None:
        return _rate(self.bounced, self.sent)

    def as_dict(self) -> dict:
        return {**asdict(self), "bounce_rate": self.bounce_rate}


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

    def as_dict(self) -> dict:
        return {
            "issue_number": self.summary.issue_number,
            "summary": self.summary.as_dict(),
            "campaigns": [c.as_dict() for c in self.campaigns],
            "bounce_reasons": [asdict(r) for r in self.bounce_reasons],
            "domains": [d.as_dict() for d in self.domains],
            "sent_per_minute": [{"minute": _iso(b.start), "sent": b.sent} for b in self.timeline],
        }


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


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


# -- dialect helpers --------------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _minute_bucket(session: Session, column) -> ColumnElement:
    if _dialect(session) == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD\"T\"HH24:MI")
    # SQLite keeps UTC times as "YYYY-MM-DD HH:MM:SS.ffffff" text
    return func.strftime("%Y-%m-%dT%H:%M", column)


def _week_bucket(session: Session, column) -> ColumnElement:
    if _dialect(session) == "postgresql":
        return func.to_char(func.date_trunc("week", func.timezone("UTC", column)), "YYYY-MM-DD")
    # next Sunday (or the same day), then back six days: the Monday that starts the ISO week
    return func.date(column, "weekday 0", "-6 days")


def _domain_of(session: Session, column) -> ColumnElement[str]:
    if _dialect(session) == "postgresql":
        return func.lower(func.split_part(column, "@", 2))
    return func.lower(func.substr(column, func.instr(column, "@") + 1))


# -- per-campaign figures ---------------------------------------------------------------------


def _delivery_counts() -> list[ColumnElement]:
    status = Delivery.status
    return [
        func.count(Delivery.id).label("recipients"),
        _count_where(status == DeliveryStatus.QUEUED.value).label("queued"),
        _count_where(status == DeliveryStatus.SENDING.value).label("sending"),
        _count_where(status == DeliveryStatus.SENT.value).label("sent"),
        _count_where(status == DeliveryStatus.FAILED.value).label("failed"),
        _count_where(status == DeliveryStatus.SKIPPED.value).label("skipped"),
        _count_where(status == DeliveryStatus.UNKNOWN.value).label("unknown"),
        _count_where(Delivery.delivered_at.is_not(None)).label("delivered"),
        _count_where(Delivery.bounced_at.is_not(None)).label("bounced"),
        _count_where(and_(Delivery.bounced_at.is_not(None),
                          Delivery.bounce_type == BounceType.PERMANENT.value)).label("bounced_hard"),
        _count_where(and_(Delivery.bounced_at.is_not(None),
                          Delivery.bounce_type == BounceType.TRANSIENT.value)).label("bounced_soft"),
        _count_where(and_(Delivery.bounced_at.is_not(None),
                          or_(Delivery.bounce_type.is_(None),
                              Delivery.bounce_type == BounceType.UNDETERMINED.value))
                     ).label("bounced_undetermined"),
        _count_where(Delivery.complained_at.is_not(None)).label("complained"),
    ]


def _unsubscribed_after(session: Session, campaign_ids: list[int]) -> dict[int, int]:
    """Recipients of each campaign who moved to ``unsubscribed`` after it started."""
    if not campaign_ids:
        return {}
    campaign_start = func.coalesce(Campaign.started_at, Campaign.created_at)
    query = (
        select(Delivery.campaign_id, func.count(func.distinct(Delivery.subscriber_id)))
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .join(SubscriberChange, and_(
            SubscriberChange.subscriber_id == Delivery.subscriber_id,
            SubscriberChange.to_status == SubscriberStatus.UNSUBSCRIBED.value,
            SubscriberChange.at >= campaign_start,
        ))
        .where(Delivery.campaign_id.in_(campaign_ids))
        .group_by(Delivery.campaign_id)
    )
    return {campaign_id: int(count) for campaign_id, count in session.execute(query)}


# SES's mailbox simulator (`mailer doctor --live`, mailer.doctor.live): its deliveries
# are tests, never part of an issue's figures, even when an operator put one on the list.
_NOT_SIMULATOR = ~func.lower(Delivery.email).like(f"%@{SIMULATOR_DOMAIN}")


def campaign_stats(session: Session, issue_number: int | None = None) -> list[CampaignStats]:
    """One row per campaign, newest issue first; only that issue's campaigns when given."""
    campaign_columns = [Campaign.id, Campaign.issue_number, Campaign.subject, Campaign.status,
                        Campaign.started_at, Campaign.created_at, Campaign.finished_at]
    query = (
        select(*campaign_columns, *_delivery_counts())
        .select_from(Campaign)
        .outerjoin(Delivery, (Delivery.campaign_id == Campaign.id) & _NOT_SIMULATOR)
        .group_by(*campaign_columns)
        .order_by(Campaign.issue_number.desc(), Campaign.id.desc())
    )
    if issue_number is not None:
        query = query.where(Campaign.issue_number == issue_number)
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
    count = func.count(DeliveryEventRecord.id)
    query = (
        select(DeliveryEventRecord.bounce_type, DeliveryEventRecord.bounce_subtype,
               DeliveryEventRecord.diagnostic, count)
        .join(Delivery, Delivery.id == DeliveryEventRecord.delivery_id)
        .where(Delivery.campaign_id.in_(campaign_ids),
               DeliveryEventRecord.kind == EventKind.BOUNCE.value, _NOT_SIMULATOR)
        .group_by(DeliveryEventRecord.bounce_type, DeliveryEventRecord.bounce_subtype,
                  DeliveryEventRecord.diagnostic)
        .order_by(count.desc(), DeliveryEventRecord.bounce_type, DeliveryEventRecord.bounce_subtype)
        .limit(limit)
    )
    return [BounceReason(kind, subtype, diagnostic, int(n))
            for kind, subtype, diagnostic, n in session.execute(query)]


def domain_stats(session: Session, campaign_ids: list[int],
                 limit: int = TOP_DOMAINS) -> list[DomainStats]:
    domain = _domain_of(session, Delivery.email).label("domain")
    recipients = func.count(Delivery.id)
    query = (
        select(
            domain,
            recipients,
            _count_where(Delivery.status == DeliveryStatus.SENT.value),
            _count_where(Delivery.delivered_at.is_not(None)),
            _count_where(Delivery.bounced_at.is_not(None)),
            _count_where(Delivery.complained_at.is_not(None)),
        )
        .where(Delivery.campaign_id.in_(campaign_ids), _NOT_SIMULATOR)
        .group_by(domain)
        .order_by(recipients.desc(), domain)
        .limit(limit)
    )
    return [DomainStats(name, *(int(n) for n in counts))
            for name, *counts in session.execute(query)]


def sent_per_minute(session: Session, campaign_ids: list[int]) -> list[TimeBucket]:
    minute = _minute_bucket(session, Delivery.sent_at).label("minute")
    query = (
        select(minute, func.count(Delivery.id))
        .where(Delivery.campaign_id.in_(campaign_ids), Delivery.sent_at.is_not(None),
               _NOT_SIMULATOR)
        .group_by(minute)
        .order_by(minute)
    )
    return [TimeBucket(datetime.fromisoformat(text).replace(tzinfo=UTC), int(n))
            for text, n in session.execute(query)]


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
    )


# -- the list over time -----------------------------------------------------------------------


def _weekly_counts(session: Session, column, *conditions) -> dict[str, int]:
    week = _week_bucket(session, column).label("week")
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


def subscriber_totals(session: Session) -> dict[str, int]:
    """How many subscribers are in each status now (every status present, zero when none)."""
    query = select(Subscriber.status, func.count(Subscriber.id)).group_by(Subscriber.status)
    counts = {str(status): int(n) for status, n in session.execute(query)}
    return {status.value: counts.get(status.value, 0) for status in SubscriberStatus}


__all__ = [
    "BounceReason", "CampaignStats", "DomainStats", "IssueDetail", "RateWarning", "TimeBucket",
    "WeekGrowth", "bounce_reasons", "bounce_warnings", "campaign_stats", "combine",
    "complaint_warnings", "domain_stats", "issue_detail", "sent_per_minute", "subscriber_growth",
    "subscriber_totals",
]
