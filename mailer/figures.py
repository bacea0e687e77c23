"""The one definition of each delivery figure (issue 22 §2). Pure: counts in, figures out.

The reputation breaker, the canary, ``mailer stats`` (table and ``--json``), ``--watch`` and the
operator console all compute their rates, percentages and size limits here, so a page can never
warn about a figure the breaker reads differently.

The rates follow SES's own reckoning (its review and pause lines are :mod:`mailer.rate_warnings`):

- **bounce rate** = hard (permanent) bounces ÷ messages sent. SES counts hard bounces only; a
  soft bounce (mailbox full, an auto-reply) is retried by the receiving side and says nothing
  about the list.
- **complaint rate** = complaints ÷ messages delivered. Only a delivered message can draw a
  complaint, and Gmail's spam rate is reckoned on delivered mail too.

A rate is a fraction (0.05 = 5 %), and ``None`` while its denominator is 0, so no caller
divides by zero or mistakes "no data yet" for "0 %".
"""

from __future__ import annotations

BOUNCE_RATE_DEFINITION = "bounce rate = hard bounces ÷ sent (as SES counts it)"
COMPLAINT_RATE_DEFINITION = "complaint rate = complaints ÷ delivered"
RATE_DEFINITIONS = f"{BOUNCE_RATE_DEFINITION}; {COMPLAINT_RATE_DEFINITION}"

# Gmail clips a message whose HTML passes about 102 KB, hiding the rest (the unsubscribe link
# too). The mail is "close to the clip" above 90 KiB: `mailer render` warns there and `mailer
# check` fails there by default (MAILER_CHECK_HTML_BUDGET), leaving room for the reader's links.
GMAIL_CLIP_BYTES = 102_400
NEAR_CLIP_BYTES = 90 * 1024

NO_FIGURE = "–"  # a rate with nothing to divide by yet


def rate(part: int, whole: int) -> float | None:
    """``part`` ÷ ``whole``, or None while ``whole`` is 0."""
    return part / whole if whole else None


def bounce_rate(hard_bounces: int, sent: int) -> float | None:
    return rate(hard_bounces, sent)


def complaint_rate(complaints: int, delivered: int) -> float | None:
    return rate(complaints, delivered)


def percent(value: float | None, digits: int = 2) -> str:
    """A rate as people read it: ``0.0833`` → ``8.33 %``; ``–`` when there is no figure."""
    return NO_FIGURE if value is None else f"{value * 100:.{digits}f} %"


def line_percent(line: float) -> str:
    """A provider's line, written as round as the provider writes it: ``5 %``, ``0.30 %``."""
    return percent(line).replace(".00 %", " %")


def near_gmail_clip(html_bytes: int, budget: int = NEAR_CLIP_BYTES) -> bool:
    return html_bytes > budget


__all__ = [
    "BOUNCE_RATE_DEFINITION", "COMPLAINT_RATE_DEFINITION", "GMAIL_CLIP_BYTES", "NEAR_CLIP_BYTES",
    "NO_FIGURE", "RATE_DEFINITIONS", "bounce_rate", "complaint_rate", "line_percent",
    "near_gmail_clip", "percent", "rate",
]
