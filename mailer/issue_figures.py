"""The figures of campaigns and issues as values: what `mailer stats`, the console and
`stats --json` show, with the rates and warnings they carry. Pure: no database.

The queries that fill them are :mod:`mailer.reads.delivery_figures` (SQLAlchemy) and, for a
read-only command on a current SQLite file, :mod:`mailer.reads.quick_counts` (the standard
library's sqlite3); both build them with :func:`campaign_from_row` from the same SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

from mailer.rate_warnings import RateWarning, bounce_warnings, complaint_warnings, rate_property

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
            data[key] = iso_utc(data[key])
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
            "sent_per_minute": [{"minute": iso_utc(b.start), "sent": b.sent} for b in self.timeline],
            "links": list(self.links),
        }


def iso_utc(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def time_buckets(minute_rows: list[tuple[str, int]]) -> list[TimeBucket]:
    """(``YYYY-MM-DDTHH:MM`` UTC, sent) rows as the issue's timeline."""
    return [TimeBucket(datetime.fromisoformat(minute).replace(tzinfo=UTC), n)
            for minute, n in minute_rows]


def bounce_reasons_of(rows) -> list[BounceReason]:
    """(bounce type, subtype, diagnostic, count) rows as the issue's bounce reasons."""
    return [BounceReason(kind, subtype, diagnostic, int(n)) for kind, subtype, diagnostic, n in rows]


def domain_figures(rows: list[tuple[str, dict[str, int]]]) -> list[DomainStats]:
    return [DomainStats(name, **counts) for name, counts in rows]


def campaign_from_row(row: Mapping) -> CampaignStats:
    """A campaign's figures from a row of the campaign joined with its counters (its columns
    ``id``, ``issue_number``, ``subject``, ``status``, ``started_at``, ``created_at``,
    ``finished_at`` and :data:`COUNT_FIELDS`)."""
    return CampaignStats(
        campaign_id=row["id"],
        issue_number=row["issue_number"],
        subject=row["subject"],
        status=str(row["status"]),
        started_at=row["started_at"] or row["created_at"],
        finished_at=row["finished_at"],
        **{name: int(row[name]) for name in COUNT_FIELDS},
    )


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


__all__ = ["COUNT_FIELDS", "RECIPIENT_COUNTS", "TOP_BOUNCE_REASONS", "TOP_DOMAINS",
           "bounce_reasons_of", "domain_figures", "time_buckets", "BounceReason", "CampaignStats", "DomainStats",
           "IssueDetail", "RecipientCounts", "TimeBucket", "campaign_from_row", "combine",
           "iso_utc"]
