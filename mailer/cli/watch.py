"""`mailer stats --issue N --watch`: a running send as it happens (issue 11 §5).

One line every few seconds, read from the database only, so it works from any machine that
shares the ledger: sent of total, the rate over the last interval, the ETA, hard bounces and
complaints so far, and the reputation breaker's state. It ends once the campaign is no longer
being sent (finished, stopped or paused), with that state on its last line.
"""

from __future__ import annotations

import json
import time

from mailer.cli._app import console, read_engine, settings
from mailer.domain import CampaignStatus
from mailer.errors import MailerError
from mailer.figures import bounce_rate, complaint_rate, percent


def watch_issue(number: int, every: float, *, as_json: bool = False) -> None:
    from mailer.campaigns import look

    db = read_engine()  # a read: never creates a database
    previous: tuple[int, float] | None = None
    while True:
        seen = look(db, number)
        if seen is None:
            raise MailerError(f"issue {number} has no campaign yet: nothing to watch")
        snapshot = take_snapshot(seen, previous)
        previous = (snapshot["sent"], time.monotonic())
        if as_json:
            print(json.dumps(snapshot), flush=True)  # one JSON object per line
        else:
            console.print(watch_line(snapshot), highlight=False, soft_wrap=True, markup=False)
        if seen.campaign.status != CampaignStatus.SENDING:
            return
        time.sleep(every)


def take_snapshot(seen, previous: tuple[int, float] | None) -> dict:
    """One line's figures from a ``campaigns.Look``; the rate since ``previous`` (sent, when)."""
    from mailer.breaker import Thresholds
    from mailer.domain import DeliveryStatus, utcnow

    campaign, counts, figures = seen.campaign, seen.counts, seen.figures
    total = sum(counts.values())
    sent = counts[DeliveryStatus.SENT]
    waiting = counts[DeliveryStatus.QUEUED] + counts[DeliveryStatus.SENDING]
    if previous is not None and time.monotonic() > previous[1]:
        rate = (sent - previous[0]) / (time.monotonic() - previous[1])
    elif campaign.started_at is not None:
        rate = sent / max(1.0, (utcnow() - campaign.started_at).total_seconds())
    else:
        rate = 0.0
    rule = Thresholds.from_settings(settings())
    return {
        "issue_number": campaign.issue_number, "campaign_id": campaign.id,
        "status": str(campaign.status), "sent": sent, "total": total, "waiting": waiting,
        "unknown": counts[DeliveryStatus.UNKNOWN], "failed": counts[DeliveryStatus.FAILED],
        "rate": round(rate, 1),
        "eta_seconds": round(waiting / rate) if rate > 0 and waiting else None,
        "delivered": figures.delivered, "hard_bounces": figures.hard_bounces,
        "complaints": figures.complaints,
        "breaker": breaker_state(campaign, rule),
    }


def breaker_state(campaign, rule) -> str:
    if campaign.status == CampaignStatus.PAUSED:
        return f"paused: {campaign.pause_reason or campaign.note}"
    return (f"ok (pauses at {percent(rule.bounce_rate)} hard bounces or "
            f"{percent(rule.complaint_rate)} complaints)")


def watch_line(s: dict) -> str:
    eta = s["eta_seconds"]
    eta_text = "-" if eta is None else f"{eta // 3600}h{eta % 3600 // 60:02d}m" if eta >= 3600 \
        else f"{eta // 60}m{eta % 60:02d}s"
    # the breaker's own rates (mailer.figures); 0 rather than "–" before anything is counted
    bounce = percent(bounce_rate(s["hard_bounces"], s["sent"]) or 0.0)
    complaint = percent(complaint_rate(s["complaints"], s["delivered"]) or 0.0)
    line = (f"issue {s['issue_number']} campaign {s['campaign_id']} {s['status']}: sent "
            f"{s['sent']:,} of {s['total']:,}, {s['rate']:.1f}/s, ETA {eta_text}; hard bounces "
            f"{s['hard_bounces']} ({bounce} of sent), complaints {s['complaints']} "
            f"({complaint} of {s['delivered']:,} delivered); breaker: {s['breaker']}")
    if s["status"] == CampaignStatus.PAUSED:
        line += f"; resume with `mailer send --issue {s['issue_number']} --resume`"
    return line
