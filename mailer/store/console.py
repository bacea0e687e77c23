"""Read-only queries behind the operator console (``/admin``): trends across issues, the list
over time, one send's progress, readers and the event log.

Like ``stats``, every figure is aggregated in SQL; a page reads a few grouped rows, never the
ledger. ``overview_document`` is the one source of ``mailer stats --json`` and
``/admin/stats.json``, so the two always carry the same keys for the same figures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from mailer.domain import BounceType, CampaignStatus, DeliveryStatus, SubscriberStatus, utcnow
from mailer.store.models import (
    Campaign,
    Delivery,
    DeliveryEventRecord,
    Subscriber,
    SubscriberChange,
)
from mailer.store.stats import (
    CampaignStats,
    _count_where,
    _domain_of,
    _iso,
    _rate,
    _week_bucket,
    campaign_stats,
    combine,
    subscriber_totals,
)

OVERVIEW_ISSUES = 12  # issues on the trend charts
OVERVIEW_WEEKS = 26  # weeks on the list chart
SIGNUP_WINDOW_DAYS = 28  # the headline confirmation rate covers the last four weeks
ISSUE_UNSUBSCRIBES = 20
SIGNUP_SOURCE = "web"  # the public form: its confirmation rate falls when it is abused
# Column names a campaign may carry to say why it is paused (added by the send path).
PAUSE_REASON_COLUMNS = ("pause_reason", "paused_reason", "stop_reason", "note")
# Mailbox providers shown first on an issue's domain table, in this order.
PROVIDERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Gmail", ("gmail.com", "googlemail.com")),
    ("Outlook", ("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk",
                 "outlook.de", "hotmail.fr", "live.co.uk")),
    ("Yahoo", ("yahoo.com", "ymail.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "aol.com")),
    ("iCloud", ("icloud.com", "me.com", "mac.com")),
    ("Proton", ("proton.me", "protonmail.com", "pm.me")),
    ("GMX / Web.de", ("gmx.de", "gmx.net", "gmx.com", "web.de")),
)
MAX_STORE_INT = 2**63 - 1  # the largest id either database can hold


def storable_id(value: int) -> bool:
    """False for numbers no row can have (a URL with 2**63 must be a 404, not an overflow)."""
    return 0 < value <= MAX_STORE_INT


# -- the overview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueTrend:
    """One issue (all its campaigns added up) on the overview's charts."""

    issue_number: int
    subject: str
    started_at: datetime | None
    sent: int
    delivered: int
    bounced: int
    complained: int
    bounce_rate: float | None
    complaint_rate: float | None

    def as_dict(self) -> dict:
        return {**asdict(self), "started_at": _iso(self.started_at)}


def issue_trends(campaigns: list[CampaignStats], limit: int = OVERVIEW_ISSUES) -> list[IssueTrend]:
    """The last ``limit`` issues, oldest first, from per-campaign figures (newest first)."""
    by_issue: dict[int, list[CampaignStats]] = {}
    for campaign in campaigns:
        by_issue.setdefault(campaign.issue_number, []).append(campaign)
    numbers = sorted(by_issue)[-limit:]
    trends = []
    for number in numbers:
        total = combine(by_issue[number])
        trends.append(IssueTrend(number, total.subject, total.started_at, total.sent,
                                 total.delivered, total.bounced, total.complained,
                                 total.bounce_rate, total.complaint_rate))
    return trends


@dataclass(frozen=True)
class ListWeek:
    """One ISO week (Monday, UTC) of the list: what came in, what left, and its size after."""

    week_start: date
    new: int
    confirmed: int
    unsubscribed: int
    bounced: int
    complained: int
    list_size: int  # active readers at the end of the week
    signups: int  # sign-ups through the public form this week
    signups_confirmed: int  # ... of which confirmed (by now)

    @property
    def confirmation_rate(self) -> float | None:
        return _rate(self.signups_confirmed, self.signups)

    def as_dict(self) -> dict:
        return {**asdict(self), "week_start": self.week_start.isoformat(),
                "confirmation_rate": self.confirmation_rate}


def _week_series(session: Session, column, *conditions) -> dict[str, int]:  # noqa: ANN001
    week = _week_bucket(session, column).label("week")
    query = select(week, func.count()).where(*conditions).group_by(week)
    return {str(key): int(n) for key, n in session.execute(query)}


def _active_net_per_week(session: Session) -> dict[str, int]:
    """Per week: changes into ``active`` minus changes out of it."""
    active = SubscriberStatus.ACTIVE.value
    week = _week_bucket(session, SubscriberChange.at).label("week")
    net = func.sum(case((SubscriberChange.to_status == active, 1), else_=0)
                   - case((SubscriberChange.from_status == active, 1), else_=0))
    query = (select(week, net)
             .where(or_(SubscriberChange.to_status == active,
                        SubscriberChange.from_status == active))
             .group_by(week))
    return {str(key): int(n or 0) for key, n in session.execute(query)}


def _signup_series(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    week = _week_bucket(session, Subscriber.created_at).label("week")
    query = (select(week, func.count(), _count_where(Subscriber.confirmed_at.is_not(None)))
             .where(Subscriber.source == SIGNUP_SOURCE)
             .group_by(week))
    signups, confirmed = {}, {}
    for key, total, done in session.execute(query):
        signups[str(key)], confirmed[str(key)] = int(total), int(done)
    return signups, confirmed


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def list_weeks(session: Session, weeks: int = OVERVIEW_WEEKS,
               today: date | None = None) -> list[ListWeek]:
    """The last ``weeks`` weeks up to this one, every week listed (quiet ones with zeros).

    The list size is counted back from today's active readers, so it always ends at the true
    figure even for readers imported without a history.
    """
    to_status = SubscriberChange.to_status
    series = {
        "new": _week_series(session, Subscriber.created_at),
        "confirmed": _week_series(session, SubscriberChange.at,
                                  to_status == SubscriberStatus.ACTIVE.value),
        "unsubscribed": _week_series(session, SubscriberChange.at,
                                     to_status == SubscriberStatus.UNSUBSCRIBED.value),
        "bounced": _week_series(session, SubscriberChange.at,
                                to_status == SubscriberStatus.BOUNCED.value),
        "complained": _week_series(session, SubscriberChange.at,
                                   to_status == SubscriberStatus.COMPLAINED.value),
    }
    signups, signups_confirmed = _signup_series(session)
    net = _active_net_per_week(session)
    this_monday = _monday(today or utcnow().date())
    keys = [(this_monday - timedelta(weeks=n)).isoformat() for n in range(weeks - 1, -1, -1)]
    size = subscriber_totals(session)[SubscriberStatus.ACTIVE.value]
    sizes: dict[str, int] = {}
    for key in reversed(keys):  # walk back from now
        sizes[key] = size
        size -= net.get(key, 0)
    return [
        ListWeek(date.fromisoformat(key), list_size=sizes[key], signups=signups.get(key, 0),
                 signups_confirmed=signups_confirmed.get(key, 0),
                 **{name: counts.get(key, 0) for name, counts in series.items()})
        for key in keys
    ]


@dataclass(frozen=True)
class SignupHealth:
    window_days: int
    signups: int
    confirmed: int
    pending: int

    @property
    def confirmation_rate(self) -> float | None:
        return _rate(self.confirmed, self.signups)

    def as_dict(self) -> dict:
        return {**asdict(self), "confirmation_rate": self.confirmation_rate}


def signup_health(session: Session, days: int = SIGNUP_WINDOW_DAYS,
                  now: datetime | None = None) -> SignupHealth:
    """Sign-ups through the form in the last ``days`` days and how many confirmed."""
    since = (now or utcnow()) - timedelta(days=days)
    query = (select(func.count(), _count_where(Subscriber.confirmed_at.is_not(None)),
                    _count_where(Subscriber.status == SubscriberStatus.PENDING.value))
             .where(Subscriber.source == SIGNUP_SOURCE, Subscriber.created_at >= since))
    total, confirmed, pending = session.execute(query).one()
    return SignupHealth(days, int(total or 0), int(confirmed or 0), int(pending or 0))


def overview_document(session: Session) -> dict:
    """``mailer stats --json`` and ``/admin/stats.json``: one dictionary, the same keys."""
    campaigns = campaign_stats(session)
    return {
        "campaigns": [c.as_dict() for c in campaigns],
        "subscribers": subscriber_totals(session),
        "issues": [t.as_dict() for t in issue_trends(campaigns)],
        "weeks": [w.as_dict() for w in list_weeks(session)],
        "signups": signup_health(session).as_dict(),
    }


# -- campaigns that need a look ---------------------------------------------------------------


@dataclass(frozen=True)
class CampaignState:
    campaign_id: int
    issue_number: int
    status: str
    reason: str | None  # why it is paused or stopped, when the campaign says
    running: bool


def pause_reason(campaign: Campaign) -> str | None:
    for name in PAUSE_REASON_COLUMNS:
        value = getattr(campaign, name, None)
        if value:
            return str(value)
    return None


def campaign_states(session: Session, ids: list[int]) -> dict[int, CampaignState]:
    """Status and pause reason of each campaign, read generically from whatever columns the
    campaign table has."""
    if not ids:
        return {}
    rows = session.execute(select(Campaign).where(Campaign.id.in_(ids))).scalars()
    return {c.id: CampaignState(c.id, c.issue_number, str(c.status), pause_reason(c),
                                str(c.status) == CampaignStatus.SENDING.value
                                and c.finished_at is None)
            for c in rows}


def needs_attention(campaign: CampaignStats) -> bool:
    """Paused, stopped or otherwise not finished and not running, or with rows in doubt."""
    settled = {CampaignStatus.FINISHED.value, CampaignStatus.SENDING.value}
    return campaign.unknown > 0 or campaign.status not in settled


# -- one issue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderStats:
    name: str  # "Gmail", or a domain for the rest
    provider: bool
    recipients: int
    sent: int
    delivered: int
    bounced: int
    complained: int

    @property
    def bounce_rate(self) -> float | None:
        return _rate(self.bounced, self.sent)


def provider_stats(session: Session, campaign_ids: list[int], limit: int = 20) -> list[ProviderStats]:
    """Recipients per mailbox provider (Gmail, Outlook, Yahoo ... first), then other domains."""
    domain = _domain_of(session, Delivery.email)
    label = case(*[(domain.in_(domains), literal(name)) for name, domains in PROVIDERS],
                 else_=domain).label("label")
    order = case(*[(domain.in_(domains), literal(i)) for i, (_, domains) in enumerate(PROVIDERS)],
                 else_=literal(len(PROVIDERS))).label("rank")
    recipients = func.count(Delivery.id)
    grouped = (
        select(label, func.min(order).label("rank"), recipients.label("recipients"),
               _count_where(Delivery.status == DeliveryStatus.SENT.value).label("sent"),
               _count_where(Delivery.delivered_at.is_not(None)).label("delivered"),
               _count_where(Delivery.bounced_at.is_not(None)).label("bounced"),
               _count_where(Delivery.complained_at.is_not(None)).label("complained"))
        .where(Delivery.campaign_id.in_(campaign_ids))
        .group_by(label)
        .subquery()
    )
    query = select(grouped).order_by(grouped.c.rank, grouped.c.recipients.desc(),
                                     grouped.c.label).limit(limit)
    return [ProviderStats(row.label, row.rank < len(PROVIDERS), int(row.recipients),
                          int(row.sent), int(row.delivered), int(row.bounced),
                          int(row.complained))
            for row in session.execute(query)]


@dataclass(frozen=True)
class Unsubscribe:
    subscriber_id: int
    email: str
    at: datetime
    source: str


def _next_issue_start(session: Session, issue_number: int) -> datetime | None:
    start = func.coalesce(Campaign.started_at, Campaign.created_at)
    return session.execute(select(func.min(start))
                           .where(Campaign.issue_number > issue_number)).scalar()


def issue_unsubscribes(session: Session, issue_number: int, campaign_ids: list[int],
                       started_at: datetime | None) -> tuple[int, dict[str, int], list[Unsubscribe]]:
    """Recipients of this issue who unsubscribed after it went out and before the next issue
    did: (how many, how many per source, the latest few)."""
    if not campaign_ids or started_at is None:
        return 0, {}, []
    conditions = [SubscriberChange.to_status == SubscriberStatus.UNSUBSCRIBED.value,
                  SubscriberChange.at >= started_at]
    until = _next_issue_start(session, issue_number)
    if until is not None:
        conditions.append(SubscriberChange.at < until)
    recipients = (select(Delivery.subscriber_id)
                  .where(Delivery.campaign_id.in_(campaign_ids)).scalar_subquery())
    base = and_(*conditions, SubscriberChange.subscriber_id.in_(recipients))
    per_source = {str(source): int(n) for source, n in session.execute(
        select(SubscriberChange.source, func.count(func.distinct(SubscriberChange.subscriber_id)))
        .where(base).group_by(SubscriberChange.source))}
    total = session.execute(select(func.count(func.distinct(SubscriberChange.subscriber_id)))
                            .where(base)).scalar() or 0
    latest = session.execute(
        select(Subscriber.id, Subscriber.email, SubscriberChange.at, SubscriberChange.source)
        .join(Subscriber, Subscriber.id == SubscriberChange.subscriber_id)
        .where(base).order_by(SubscriberChange.at.desc()).limit(ISSUE_UNSUBSCRIBES))
    return int(total), per_source, [Unsubscribe(*row) for row in latest]


@dataclass(frozen=True)
class SendBucket:
    start: datetime
    sent: int


def send_buckets(session: Session, campaign_ids: list[int], seconds: int) -> list[SendBucket]:
    """Messages sent per ``seconds``-wide bucket (aligned to the epoch), empty ones left out."""
    epoch = _epoch_seconds(session, Delivery.sent_at)
    bucket = (func.floor(epoch / seconds) * seconds).label("bucket")
    query = (select(bucket, func.count(Delivery.id))
             .where(Delivery.campaign_id.in_(campaign_ids), Delivery.sent_at.is_not(None))
             .group_by(bucket).order_by(bucket))
    return [SendBucket(datetime.fromtimestamp(int(start), UTC), int(n))
            for start, n in session.execute(query)]


def send_span(session: Session, campaign_ids: list[int]) -> tuple[datetime | None, datetime | None]:
    query = select(func.min(Delivery.sent_at), func.max(Delivery.sent_at)).where(
        Delivery.campaign_id.in_(campaign_ids), Delivery.sent_at.is_not(None))
    first, last = session.execute(query).one()
    return _aware(first), _aware(last)


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's min() of a datetime column comes back as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _epoch_seconds(session: Session, column):  # noqa: ANN001, ANN202 - SQL expressions
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column)
    return func.cast(func.strftime("%s", column), _integer())


def _integer():  # noqa: ANN202
    from sqlalchemy import Integer

    return Integer


@dataclass(frozen=True)
class Progress:
    """A running send, for the issue page's live figures."""

    issue_number: int
    recipients: int
    queued: int
    sending: int
    sent: int
    failed: int
    skipped: int
    unknown: int
    delivered: int
    bounced: int
    complained: int
    running: bool
    status: str

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.unknown

    def as_dict(self) -> dict:
        return {**asdict(self), "done": self.done}


def issue_progress(session: Session, issue_number: int) -> Progress | None:
    campaigns = campaign_stats(session, issue_number)
    if not campaigns:
        return None
    total = combine(campaigns)
    states = campaign_states(session, [c.campaign_id for c in campaigns if c.campaign_id])
    running = any(state.running for state in states.values())
    return Progress(issue_number, total.recipients, total.queued, total.sending, total.sent,
                    total.failed, total.skipped, total.unknown, total.delivered, total.bounced,
                    total.complained, running, campaigns[0].status)


__all__ = [
    "CampaignState", "IssueTrend", "ListWeek", "Progress", "ProviderStats", "SendBucket",
    "SignupHealth", "Unsubscribe", "campaign_states", "issue_progress", "issue_trends",
    "issue_unsubscribes", "list_weeks", "needs_attention", "overview_document", "pause_reason",
    "provider_stats", "send_buckets", "send_span", "signup_health", "storable_id",
]
