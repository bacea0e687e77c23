"""Read-only queries behind the operator console's overview (``/admin``): trends across issues,
the list over time, sign-up health, and campaigns that need a look. The issue page's queries
are in ``console_issue``, readers and events in ``console_readers``.

Like ``stats``, every figure is aggregated in SQL; a page reads a few grouped rows, never the
ledger. ``overview_document`` is the one source of ``mailer stats --json`` and
``/admin/stats.json``, so the two always carry the same keys for the same figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from mailer.domain import CampaignStatus, Reputation, SubscriberStatus, utcnow
from mailer.rate_warnings import rate_property
from mailer.store.ledger import breaker_baseline
from mailer.store.models import Campaign, stored_id
from mailer.issue_figures import iso_utc
from mailer.reads.delivery_figures import CampaignStats, campaign_stats, combine
from mailer.reads.subscriber_figures import subscribers_by_status
from mailer.reads.week_figures import keep_weeks_again, week_series

OVERVIEW_ISSUES = 12  # issues on the trend charts
OVERVIEW_WEEKS = 26  # weeks on the list chart
SIGNUP_WINDOW_WEEKS = 4  # the headline confirmation rate covers the last four weeks
# Column names a campaign may carry to say why it is paused (added by the send path).
PAUSE_REASON_COLUMNS = ("pause_reason", "paused_reason", "stop_reason", "note")
# Mailbox providers shown first on an issue's domain table, in this order.
MAILBOX_PROVIDERS: tuple[tuple[str, tuple[str, ...]], ...] = (
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
    bounced_hard: int
    complained: int
    bounce_rate: float | None  # mailer.figures' rates, as the breaker and `mailer stats` reckon
    complaint_rate: float | None

    def as_dict(self) -> dict:
        return {**asdict(self), "started_at": iso_utc(self.started_at)}


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
                                 total.delivered, total.bounced, total.bounced_hard,
                                 total.complained,
                                 total.bounce_rate, total.complaint_rate))
    return trends


@dataclass(frozen=True)
class ListWeek:
    """One ISO week (Monday, UTC) of the list: what came in, what left, and its size after."""

    week_start: date
    new: int  # sign-ups (the form, or by hand); imported readers are counted apart
    confirmed: int
    unsubscribed: int
    bounced: int
    complained: int
    list_size: int  # active readers at the end of the week
    signups: int  # sign-ups through the public form this week
    signups_confirmed: int  # ... of which confirmed (by now)
    signups_pending: int = 0  # ... and still waiting to confirm
    imported: int = 0  # readers an import (CSV or Mailchimp) added as active this week

    confirmation_rate = rate_property("signups_confirmed", "signups")

    def as_dict(self) -> dict:
        return {**asdict(self), "week_start": self.week_start.isoformat(),
                "confirmation_rate": self.confirmation_rate}


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _window(weeks: int, today: date | None) -> tuple[date, date]:
    """(the first Monday, this Monday) of the last ``weeks`` weeks up to this one."""
    this_monday = _monday(today or utcnow().date())
    return this_monday - timedelta(weeks=weeks - 1), this_monday


def keep_overview_weeks(session: Session) -> None:
    """Count the overview's closed weeks again and keep them (``mailer db recount``), so the
    first console visit after it does not count half a year of the list."""
    keep_weeks_again(session, *_window(OVERVIEW_WEEKS, None))


def list_weeks(session: Session, weeks: int = OVERVIEW_WEEKS,
               today: date | None = None) -> list[ListWeek]:
    """The last ``weeks`` weeks up to this one, every week listed (quiet ones with zeros).

    The weeks that are over are kept once counted (``week_figures``): a read counts this
    week's rows and those of any week written to since. The list size is counted back from
    today's active readers, so it always ends at the true figure, even for readers imported
    without a history.
    """
    first, this_monday = _window(weeks, today)
    series = week_series(session, first, this_monday)
    net = series.pop("net")
    keys = [(first + timedelta(weeks=n)).isoformat() for n in range(weeks)]
    size = subscribers_by_status(session)[SubscriberStatus.ACTIVE.value]
    sizes: dict[str, int] = {}
    for key in reversed(keys):  # walk back from now
        sizes[key] = size
        size -= net.get(key, 0)
    return [
        ListWeek(date.fromisoformat(key), list_size=sizes[key],
                 **{name: counts.get(key, 0) for name, counts in series.items()})
        for key in keys
    ]


@dataclass(frozen=True)
class SignupHealth:
    """Sign-ups through the form over the last few weeks (this one included)."""

    window_weeks: int
    signups: int
    confirmed: int
    pending: int

    confirmation_rate = rate_property("confirmed", "signups")

    def as_dict(self) -> dict:
        return {**asdict(self), "confirmation_rate": self.confirmation_rate}


def signup_health(weeks: list[ListWeek], window: int = SIGNUP_WINDOW_WEEKS) -> SignupHealth:
    recent = weeks[-window:]
    return SignupHealth(len(recent), sum(w.signups for w in recent),
                        sum(w.signups_confirmed for w in recent),
                        sum(w.signups_pending for w in recent))


def overview_document(session: Session) -> dict:
    """``mailer stats --json`` and ``/admin/stats.json``: one dictionary, the same keys."""
    return overview_from(campaign_stats(session), list_weeks(session), subscribers_by_status(session))


def overview_from(campaigns: list[CampaignStats], weeks: list[ListWeek],
                  totals: dict[str, int]) -> dict:
    return {
        "campaigns": [c.as_dict() for c in campaigns],
        "subscribers": totals,
        "issues": [t.as_dict() for t in issue_trends(campaigns)],
        "weeks": [w.as_dict() for w in weeks],
        "signups": signup_health(weeks).as_dict(),
    }


# -- campaigns that need a look ---------------------------------------------------------------


@dataclass(frozen=True)
class CampaignState:
    campaign_id: int
    issue_number: int
    status: str
    reason: str | None  # why it is paused or stopped, when the campaign says
    running: bool
    paused_at: datetime | None = None  # when the reputation breaker paused it ...
    breaker: Reputation | None = None  # ... and the figures it paused on


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
    rows = session.execute(select(Campaign).where(col(Campaign.id).in_(ids))).scalars()
    states = (_state_of(campaign) for campaign in rows)
    return {state.campaign_id: state for state in states}


def _state_of(c: Campaign) -> CampaignState:
    return CampaignState(stored_id(c.id), c.issue_number, str(c.status), pause_reason(c),
                         str(c.status) == CampaignStatus.SENDING.value and c.finished_at is None,
                         c.paused_at, breaker_baseline(c))


def needs_attention(campaign: CampaignStats) -> bool:
    """Paused, stopped or otherwise not finished and not running, or with rows in doubt."""
    settled = {CampaignStatus.FINISHED.value, CampaignStatus.SENDING.value}
    return campaign.unknown > 0 or campaign.status not in settled


__all__ = [
    "CampaignState", "IssueTrend", "ListWeek", "SignupHealth", "campaign_states",
    "issue_trends", "list_weeks", "needs_attention", "overview_document", "pause_reason",
    "overview_from", "signup_health", "storable_id",
]
