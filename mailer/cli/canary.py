"""`mailer send --canary 2% --canary-wait 20m` (issue 11 §3).

A random sample of the campaign's readers, recorded on their ledger rows, is sent first. The
send then waits for the sample's events and applies the breaker's thresholds to them (with the
minimum samples scaled down to the canary's size). If they hold, the rest follows in the same
run; if not, the campaign is paused (exit 3) until `--resume`. While it waits, the campaign is
stopped with a note, so no worker joins; a rerun waits out what is left. The canary readers are
sent like every other row of the campaign, so no resume ever sends to them twice.
"""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import timedelta

from mailer.cli.send_output import _out, _fmt_duration
from mailer.errors import SendError

PROGRESS_EVERY = 10.0  # seconds between "waiting" lines


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


def canary_thresholds(thresholds, size: int):
    """The breaker's rule with its minimum samples scaled to a canary of ``size`` readers."""
    return dataclasses.replace(thresholds, min_sent=min(thresholds.min_sent, size),
                               min_delivered=min(thresholds.min_delivered, max(1, size // 2)))


def await_canary_events(db, campaign, thresholds, interval: float) -> str | None:
    """Wait until ``campaign.canary_until`` for the sample's events; the reason if they cross
    a threshold (checked every ``interval`` seconds), else None."""
    from mailer.domain import utcnow
    from mailer.store import ledger

    rule = canary_thresholds(thresholds, campaign.canary_size or 1)
    said = 0.0
    while True:
        figures = ledger.reputation(db, campaign.id, canary_only=True)
        reason = rule.crossed(figures)
        if reason is not None:
            return f"canary: {reason}"
        left = (campaign.canary_until - utcnow()).total_seconds()
        if left <= 0:
            _out(f"canary held: {figures.sent} sent, {figures.delivered} delivered, "
                 f"{figures.hard_bounces} hard bounces, {figures.complaints} complaints; "
                 "sending to the rest")
            return None
        if time.monotonic() - said >= PROGRESS_EVERY:
            _out(f"canary: waiting {_fmt_duration(left)} more for events ({figures.delivered} "
                 f"of {figures.sent} delivered, {figures.hard_bounces} hard bounces, "
                 f"{figures.complaints} complaints)")
            said = time.monotonic()
        time.sleep(min(interval, max(0.05, left)))


def start_waiting(db, campaign_id: int, wait: timedelta):
    """Record until when the canary's events are awaited; returns the campaign."""
    from mailer.domain import utcnow
    from mailer.store import ledger

    campaign = ledger.get_campaign(db, campaign_id)
    until = campaign.canary_until or utcnow() + wait
    if until > utcnow():  # the first wait, or what a rerun has left of it
        ledger.wait_for_canary_until(db, campaign_id, until,
                                     f"canary: waiting for its events until {until:%H:%M:%S} "
                                     "UTC")
        campaign = ledger.get_campaign(db, campaign_id)
    return campaign
