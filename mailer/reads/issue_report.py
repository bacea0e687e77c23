"""Queries behind the console's issue page: providers first, unsubscribes attributed to the
issue, the send re-binned into readable units, live progress, and everything for the page at
once (``issue_bundle``, which the console's cache keeps for finished issues)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from mailer.domain import CampaignStatus, DeliveryStatus, SubscriberStatus
from mailer.reads.list_health import MAILBOX_PROVIDERS, CampaignState, campaign_states
from mailer.store.models import Campaign, Delivery, Subscriber, SubscriberChange, stored_id
from mailer.reads.delivery_figures import (
    RECIPIENT_COUNTS,
    CampaignStats,
    IssueDetail,
    RecipientCounts,
    TimeBucket,
    bounce_reasons,
    campaign_stats,
    combine,
    domain_stats,
    sent_per_minute,
)

ISSUE_UNSUBSCRIBES = 20  # the latest unsubscribes listed by name


# -- one issue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderStats(RecipientCounts):
    name: str  # "Gmail", or a domain for the rest
    provider: bool


def _provider_of(domain: str) -> tuple[int, str]:
    for rank, (name, domains) in enumerate(MAILBOX_PROVIDERS):
        if domain in domains:
            return rank, name
    return len(MAILBOX_PROVIDERS), domain


def provider_stats(session: Session, campaign_ids: list[int], limit: int = 20) -> list[ProviderStats]:
    """Recipients per mailbox provider (Gmail, Outlook, Yahoo ... first), then the largest
    other domains. SQL groups by domain (one pass, the domain computed once per row); the few
    thousand domains are then folded into providers here."""
    merged: dict[str, dict[str, int]] = {}
    ranks: dict[str, int] = {}
    for domain in domain_stats(session, campaign_ids, limit=None):
        rank, name = _provider_of(domain.domain)
        ranks[name] = rank
        counts = merged.setdefault(name, dict.fromkeys(RECIPIENT_COUNTS, 0))
        for key in RECIPIENT_COUNTS:
            counts[key] += getattr(domain, key)
    order = sorted(merged, key=lambda name: (ranks[name], -merged[name]["recipients"], name))
    return [ProviderStats(name, ranks[name] < len(MAILBOX_PROVIDERS), **merged[name])
            for name in order[:limit]]


@dataclass(frozen=True)
class Unsubscribe:
    subscriber_id: int
    email: str
    at: datetime
    source: str


def _next_issue_start(session: Session, issue_number: int) -> datetime | None:
    start = func.coalesce(col(Campaign.started_at), col(Campaign.created_at))
    return session.execute(select(func.min(start))
                           .where(col(Campaign.issue_number) > issue_number)).scalar()


def issue_unsubscribes(session: Session, issue_number: int, campaign_ids: list[int],
                       started_at: datetime | None) -> tuple[int, dict[str, int], list[Unsubscribe]]:
    """Recipients of this issue who unsubscribed after it went out and before the next issue
    did: (how many, how many per source, the latest few).

    Driven from the window's unsubscribes (an index range on the change time), each checked
    against the ledger, so the cost follows the unsubscribes, not the size of the send."""
    if not campaign_ids or started_at is None:
        return 0, {}, []
    conditions = [col(SubscriberChange.to_status) == SubscriberStatus.UNSUBSCRIBED.value,
                  col(SubscriberChange.at) >= started_at]
    until = _next_issue_start(session, issue_number)
    if until is not None:
        conditions.append(col(SubscriberChange.at) < until)
    received = (select(col(Delivery.id))
                .where(col(Delivery.subscriber_id) == col(SubscriberChange.subscriber_id),
                       col(Delivery.campaign_id).in_(campaign_ids)).exists())
    rows = session.execute(
        select(col(Subscriber.id), col(Subscriber.email), col(SubscriberChange.at),
               col(SubscriberChange.source))
        .join(Subscriber, col(Subscriber.id) == col(SubscriberChange.subscriber_id))
        .where(*conditions, received).order_by(col(SubscriberChange.at).desc()))
    seen: set[int] = set()
    per_source: dict[str, int] = {}
    latest: list[Unsubscribe] = []
    for row_id, email, at, source in rows:
        reader_id = stored_id(row_id)
        if reader_id in seen:
            continue  # unsubscribed twice in the window (re-subscribed between): once here
        seen.add(reader_id)
        per_source[str(source)] = per_source.get(str(source), 0) + 1
        if len(latest) < ISSUE_UNSUBSCRIBES:
            latest.append(Unsubscribe(reader_id, email, at, str(source)))
    return len(seen), per_source, latest


@dataclass(frozen=True)
class SendBucket:
    start: datetime
    sent: int


def rebin(timeline: list[TimeBucket], seconds: int) -> list[SendBucket]:
    """Minute buckets (from ``stats.sent_per_minute``) merged into ``seconds``-wide ones
    aligned to the epoch, every one between the first and the last listed (quiet ones with 0)."""
    if not timeline:
        return []

    def floor(at: datetime) -> int:
        return int(at.timestamp()) // seconds * seconds

    counts: dict[int, int] = {}
    for bucket in timeline:
        counts[floor(bucket.start)] = counts.get(floor(bucket.start), 0) + bucket.sent
    first, last = floor(timeline[0].start), floor(timeline[-1].start)
    return [SendBucket(datetime.fromtimestamp(at, UTC), counts.get(at, 0))
            for at in range(first, last + 1, seconds)]


@dataclass(frozen=True)
class IssueBundle:
    """Everything the issue page shows, from one pass over each breakdown."""

    detail: IssueDetail  # summary, campaigns, bounce reasons and the minute timeline
    providers: list[ProviderStats]
    unsubscribes: tuple[int, dict[str, int], list[Unsubscribe]]
    states: dict[int, CampaignState]

    @property
    def settled(self) -> bool:
        """Every send of it finished: only provider events can change its figures now."""
        return all(c.status == CampaignStatus.FINISHED.value for c in self.detail.campaigns)


def issue_bundle(session: Session, issue_number: int) -> IssueBundle | None:
    campaigns = campaign_stats(session, issue_number)
    if not campaigns:
        return None
    ids = [c.campaign_id for c in campaigns if c.campaign_id is not None]
    summary = combine(campaigns)
    detail = IssueDetail(summary=summary, campaigns=campaigns,
                         bounce_reasons=bounce_reasons(session, ids),
                         timeline=sent_per_minute(session, ids))
    return IssueBundle(detail, provider_stats(session, ids),
                       issue_unsubscribes(session, issue_number, ids, summary.started_at),
                       campaign_states(session, ids))


@dataclass(frozen=True)
class IssueProgress:
    """A send's rows by state, for the issue page's live figures."""

    issue_number: int
    recipients: int
    queued: int
    sending: int
    sent: int
    failed: int
    skipped: int
    unknown: int
    running: bool
    status: str

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.unknown

    def as_dict(self) -> dict:
        return {**asdict(self), "done": self.done}


def _progress(issue_number: int, by_status: dict[str, int],
              states: dict[int, CampaignState], status: str) -> IssueProgress:
    def rows_in(state: DeliveryStatus) -> int:
        return by_status.get(state.value, 0)

    return IssueProgress(issue_number, sum(by_status.values()),
                         queued=rows_in(DeliveryStatus.QUEUED),
                         sending=rows_in(DeliveryStatus.SENDING), sent=rows_in(DeliveryStatus.SENT),
                         failed=rows_in(DeliveryStatus.FAILED),
                         skipped=rows_in(DeliveryStatus.SKIPPED),
                         unknown=rows_in(DeliveryStatus.UNKNOWN),
                         running=any(state.running for state in states.values()), status=status)


def progress_of(campaigns: list[CampaignStats], states: dict[int, CampaignState]) -> IssueProgress:
    total = combine(campaigns)
    by_status = {s.value: getattr(total, s.value) for s in DeliveryStatus}
    return _progress(total.issue_number, by_status, states, campaigns[0].status)


def issue_progress(session: Session, issue_number: int) -> IssueProgress | None:
    """Rows per state from the (campaign, status) index alone: cheap enough to poll every few
    seconds during a send of 200,000."""
    campaigns = session.execute(select(col(Campaign.id), col(Campaign.status))
                                .where(col(Campaign.issue_number) == issue_number)
                                .order_by(col(Campaign.id).desc())).all()
    if not campaigns:
        return None
    ids = [stored_id(cid) for cid, _ in campaigns]
    by_status = {str(status): int(n) for status, n in session.execute(
        select(col(Delivery.status), func.count()).where(col(Delivery.campaign_id).in_(ids))
        .group_by(col(Delivery.status)))}
    return _progress(issue_number, by_status, campaign_states(session, ids), str(campaigns[0][1]))


__all__ = [
    "IssueBundle", "IssueProgress", "ProviderStats", "SendBucket", "Unsubscribe", "issue_bundle",
    "issue_progress", "issue_unsubscribes", "progress_of", "provider_stats", "rebin",
]
