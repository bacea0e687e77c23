"""One run of a campaign: its dispatcher, and the canary's wait and verdict (issue 11 §3).

A canary is a random sample of the campaign's readers, recorded on their ledger rows and sent
first. The send then waits for the sample's events and applies the breaker's thresholds to them
(with the minimum samples scaled down to the canary's size). If they hold, the rest follows in
the same run; if not, the campaign is paused until `--resume`. While it waits, the campaign is
stopped with a note, so no worker joins; a rerun waits out what is left.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from mailer.breaker import Thresholds
from mailer.campaigns.results import campaign_size, remaining
from mailer.campaigns.start import Pace
from mailer.domain import CampaignStatus, Reputation, utcnow
from mailer.errors import SendError
from mailer.store import ledger

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mailer.config import Settings
    from mailer.dispatch import Dispatcher, SendReport
    from mailer.render.pipeline import RenderedIssue
    from mailer.store.models import Campaign
    from mailer.transports.base import Transport


@dataclass(frozen=True)
class SendJob:
    """Everything one run of a campaign needs, fixed before it starts."""

    db: Engine  # the ledger
    transport: Transport
    rendered: RenderedIssue
    settings: Settings
    campaign_id: int
    issue_number: int
    pace: Pace


def new_dispatcher(job: SendJob, limit: int | None = None, *,
                   canary_only: bool = False) -> tuple[Dispatcher, int]:
    """The dispatcher for this run, and how many rows it is going to send at most."""
    from mailer.dispatch import Dispatcher, MessageComposer, SendOptions

    s = job.settings
    composer = MessageComposer(job.rendered, s, campaign_id=job.campaign_id,
                               issue_number=job.issue_number)
    pace = job.pace
    rule = Thresholds.from_settings(s).for_campaign(campaign_size(job.db, job.campaign_id))
    options = SendOptions(rate=pace.rate, concurrency=pace.threads, size_concurrency=pace.sized,
                          limit=limit, breaker=rule,
                          breaker_interval=s.breaker_interval, canary_only=canary_only)
    dispatcher = Dispatcher(job.db, job.transport, composer, job.campaign_id, options,
                            quota=pace.quota)
    total = (ledger.canary_waiting(job.db, job.campaign_id) if canary_only
             else remaining(job.db, job.campaign_id, False))
    return dispatcher, total if limit is None else min(total, limit)


# -- the canary --------------------------------------------------------------------------------

def canary_size(text: str, audience: int) -> int:
    """``2%`` of the audience (at least one reader) or a number of readers."""
    value = text.strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return max(1, math.ceil(audience * share / 100))
        count = int(value)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise SendError(f"--canary: expected a share such as 2% or a number of readers, got "
                        f"{text!r}") from None


@dataclass(frozen=True)
class CanaryWait:
    """The sample's figures while its events are awaited; ``left`` 0 means they held."""

    figures: Reputation
    left: float  # seconds still to wait


def canary_thresholds(thresholds: Thresholds, size: int) -> Thresholds:
    """The breaker's rule with its minimum samples scaled to a canary of ``size`` readers."""
    return dataclasses.replace(thresholds, min_sent=min(thresholds.min_sent, size),
                               min_delivered=min(thresholds.min_delivered, max(1, size // 2)))


def canary_phase(job: SendJob, wait: timedelta, send: Callable[..., SendReport],
                 on_wait: Callable[[CanaryWait], None]) -> SendReport | None:
    """Send the campaign's canary sample (if it has one not yet sent) and wait for its events.

    ``send(job, canary_only=True)`` runs the dispatcher and returns its report; ``on_wait``
    gets a :class:`CanaryWait` every few seconds. None: go on with the rest; else the report
    of a run that stopped (the sample's run stopped, or its events paused the campaign)."""
    from mailer.dispatch import SendReport

    db, campaign_id = job.db, job.campaign_id
    campaign = _campaign(db, campaign_id)
    if not campaign.canary_size or campaign.status == CampaignStatus.FINISHED:
        return None
    reviewed = campaign.breaker_sent is not None  # an operator resumed after a pause
    if reviewed and not ledger.canary_waiting(db, campaign_id):
        return None
    if ledger.canary_waiting(db, campaign_id):
        report = send(job, canary_only=True)
        if report.stop_reason or report.paused:
            return report
    campaign = _start_waiting(db, campaign_id, wait)
    settings = job.settings
    reason = _await_events(db, campaign, Thresholds.from_settings(settings),
                           settings.breaker_interval, on_wait)
    if reason is None:
        ledger.resume_campaign(db, campaign_id)
        return None
    ledger.pause_campaign(db, campaign_id, reason, ledger.reputation(db, campaign_id))
    return SendReport(campaign_id=campaign_id, sent=0, failed=0, skipped=0, throttled=0,
                      retried=0, elapsed=0.0, finished=False, stop_reason=reason,
                      account_error=False, paused=True)


def canary_undecided(campaign) -> bool:
    """The campaign has a canary whose events are not judged yet. Until then only its sample may
    be sent: the `mailer send` that chose it judges it, then goes on with the rest; a worker
    that joins meanwhile must not send the rest before the verdict."""
    if not campaign.canary_size or campaign.breaker_sent is not None:
        return False  # no canary, or an operator resumed after reviewing a pause
    return campaign.canary_until is None or campaign.canary_until > utcnow()


PROGRESS_EVERY = 10.0  # seconds between reports while the canary's events are awaited


def _await_events(db, campaign, thresholds: Thresholds, interval: float,
                  on_wait: Callable) -> str | None:
    """Wait until ``campaign.canary_until`` for the sample's events; the reason if they cross
    a threshold (checked every ``interval`` seconds), else None."""
    rule = canary_thresholds(thresholds, campaign.canary_size or 1)
    said = 0.0
    while True:
        figures = ledger.reputation(db, campaign.id, canary_only=True)
        reason = rule.crossed(figures)
        if reason is not None:
            return f"canary: {reason}"
        left = (campaign.canary_until - utcnow()).total_seconds()
        if left <= 0:
            on_wait(CanaryWait(figures=figures, left=0.0))
            return None
        if time.monotonic() - said >= PROGRESS_EVERY:
            on_wait(CanaryWait(figures=figures, left=left))
            said = time.monotonic()
        time.sleep(min(interval, max(0.05, left)))


def _campaign(db, campaign_id: int) -> Campaign:
    """The campaign a send is running: it exists (the run created or found it)."""
    campaign = ledger.get_campaign(db, campaign_id)
    if campaign is None:
        raise LookupError(f"campaign {campaign_id} is not in the ledger")
    return campaign


def _start_waiting(db, campaign_id: int, wait: timedelta):
    """Record until when the canary's events are awaited; returns the campaign."""
    campaign = _campaign(db, campaign_id)
    until = campaign.canary_until or utcnow() + wait
    if until > utcnow():  # the first wait, or what a rerun has left of it
        ledger.wait_for_canary_until(db, campaign_id, until,
                                     f"canary: waiting for its events until {until:%H:%M:%S} "
                                     "UTC")
        campaign = _campaign(db, campaign_id)
    return campaign
