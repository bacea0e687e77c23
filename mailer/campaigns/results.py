"""What a campaign holds now, as data for the entry points to present."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from mailer.domain import DeliveryStatus, Reputation
from mailer.reads.send_figures import keep_finished_send
from mailer.store import ledger
from mailer.store.ledger import Recovery, Settling
from mailer.store.models import Campaign, stored_id

if TYPE_CHECKING:
    from mailer.dispatch import SendReport


@dataclass(frozen=True)
class AlreadySent:
    """An issue whose campaign is finished: nothing to do without ``--again``."""

    campaign: Campaign
    counts: dict[DeliveryStatus, int]
    settling: Settling | None = None  # rows still unknown: where they stand (SES settles them)


@dataclass(frozen=True)
class Recovered:
    """What a start found left behind by workers that died."""

    released: int  # leased rows back in the queue
    unknown: int  # rows whose fate is unknown, in the whole campaign


@dataclass(frozen=True)
class Outcome:
    """One run's report with the campaign's figures after it."""

    report: SendReport
    campaign: Campaign | None
    counts: dict[DeliveryStatus, int]
    failures: list[tuple[str, str]]  # (address, reason), the first few
    settling: Settling | None = None  # where the unknown rows left stand, if any
    paused: int = 0  # of the skipped rows: readers who paused themselves (issue 26)


@dataclass(frozen=True)
class Look:
    """A running (or ended) campaign seen from the database: for `stats --watch`."""

    campaign: Campaign
    counts: dict[DeliveryStatus, int]
    figures: Reputation


def id_of(campaign: Campaign) -> int:
    """The id of a campaign read from the ledger (``store.models.stored_id``)."""
    return stored_id(campaign.id)


def get_campaign(db, campaign_id: int) -> Campaign | None:
    return ledger.get_campaign(db, campaign_id)


def unknown_count(db, campaign_id: int) -> int:
    return ledger.count_by_status(db, campaign_id)[DeliveryStatus.UNKNOWN]


def campaign_size(db, campaign_id: int) -> int:
    """Every reader the campaign was started for, whatever became of their row."""
    return sum(ledger.count_by_status(db, campaign_id).values())


def remaining(db, campaign_id: int, include_unknown: bool) -> int:
    """Rows still to send: queued and in flight, plus the unknown ones if they are re-sent."""
    counts = ledger.count_by_status(db, campaign_id)
    left = counts[DeliveryStatus.QUEUED] + counts[DeliveryStatus.SENDING]
    return left + (counts[DeliveryStatus.UNKNOWN] if include_unknown else 0)


def already_sent(db, campaign: Campaign) -> AlreadySent:
    return AlreadySent(campaign=campaign,
                       counts=ledger.count_by_status(db, id_of(campaign)))


def settling(db, campaign_id: int, settle_after: timedelta) -> Settling:
    """Where the campaign's unknown rows stand against the settle rule (nothing changes)."""
    return ledger.settle_unknown(db, campaign_id, settle_after, requeue=False)


def finish_send(db, report: SendReport, settle_after: timedelta | None = None) -> Outcome:
    """The figures a run ends with: this run's report and the whole campaign's counts, and
    where its unknown rows stand against the settle rule (``settle_after`` given)."""
    counts = ledger.count_by_status(db, report.campaign_id)
    if report.finished:  # its timeline and domains are final: counted now, not on a first read
        keep_finished_send(db, report.campaign_id)
    standing = None
    if settle_after is not None and counts[DeliveryStatus.UNKNOWN]:
        standing = settling(db, report.campaign_id, settle_after)
    return Outcome(report=report, campaign=ledger.get_campaign(db, report.campaign_id),
                   counts=counts, failures=ledger.failures(db, report.campaign_id, limit=5),
                   settling=standing,
                   paused=ledger.paused_by_readers(db, report.campaign_id)
                   if counts[DeliveryStatus.SKIPPED] else 0)


def recovered(db, campaign_id: int, recovery: Recovery) -> Recovered:
    """A recovery with the campaign's unknown rows counted after it."""
    return Recovered(released=recovery.released, unknown=unknown_count(db, campaign_id))


def look(db, number: int) -> Look | None:
    """The issue's latest campaign and its figures; None when it has none."""
    campaign = ledger.latest_campaign(db, number)
    if campaign is None:
        return None
    found = id_of(campaign)
    return Look(campaign=campaign, counts=ledger.count_by_status(db, found),
                figures=ledger.reputation(db, found))
