"""`mailer send --canary 2% --canary-wait 20m` (issue 11 §3): reading the flag and saying how
the wait goes. The canary itself (sample, wait, verdict) is ``mailer.campaigns.run``.

The canary readers are sent like every other row of the campaign, so no resume ever sends to
them twice.
"""

from __future__ import annotations

import math

from mailer.cli.send_output import _fmt_duration, _out
from mailer.errors import SendError


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
