"""`mailer send --canary 2% --canary-wait 20m` (issue 11 §3): reading the flag and saying how
the wait goes. The canary itself (its size, sample, wait, verdict) is ``mailer.campaigns.run``.

The canary readers are sent like every other row of the campaign, so no resume ever sends to
them twice.
"""

from __future__ import annotations

from mailer.campaigns import canary_size
from mailer.cli.send_output import _fmt_duration, _out

__all__ = ["canary_size", "print_canary_wait"]  # canary_size: the policy, kept here for callers


def print_canary_wait(wait) -> None:
    """One line while the canary's events are awaited (a ``campaigns.CanaryWait``)."""
    figures = wait.figures
    if wait.left <= 0:
        _out(f"canary held: {figures.sent} sent, {figures.delivered} delivered, "
             f"{figures.hard_bounces} hard bounces, {figures.complaints} complaints; "
             "sending to the rest")
        return
    _out(f"canary: waiting {_fmt_duration(wait.left)} more for events ({figures.delivered} "
         f"of {figures.sent} delivered, {figures.hard_bounces} hard bounces, "
         f"{figures.complaints} complaints)")
