"""Delivery rates and the lines SES and Gmail draw on them. Pure: counts in, rates and
warnings out.

Rates are fractions (0.05 = 5 %) and ``None`` when nothing was sent yet, so a script never divides
by zero and never mistakes "no data" for "0 %".

These are the provider's lines, used to warn an operator about a campaign's figures. The
reputation breaker (:mod:`mailer.breaker`) has lines of its own, set well below these and
configurable, that pause a send in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

# SES puts an account under review at a 5 % bounce rate and may pause it at 10 %; complaints:
# 0.1 % review, 0.5 % pause. Gmail wants spam complaints under 0.3 %. We warn at half the review
# line, while there is still time to clean the list.
BOUNCE_REVIEW = 0.05
BOUNCE_PAUSE = 0.10
COMPLAINT_REVIEW = 0.001
COMPLAINT_PAUSE = 0.005
GMAIL_SPAM_LINE = 0.003
EARLY_WARNING_SHARE = 0.5


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rate_property(part: str, whole: str = "sent") -> property:
    """A read-only property: the count field ``part`` over the count field ``whole``."""
    return property(lambda figures: rate(getattr(figures, part), getattr(figures, whole)),
                    doc=f"{part} / {whole}, or None while {whole} is 0")


@dataclass(frozen=True)
class RateWarning:
    code: str  # stable: bounce_near_review, bounce_review, bounce_pause, complaint_..., gmail_spam
    level: str  # "warning" (act soon) or "critical" (SES or Gmail acts on it)
    message: str


def _percent(value: float) -> str:
    return f"{value * 100:.2f} %".replace(".00 %", " %")


def _ses_warning(kind: str, rate: float, review: float, pause: float) -> RateWarning | None:
    """Where ``rate`` stands against SES's lines for ``kind`` ("bounce" or "complaint")."""
    if rate >= pause:
        return RateWarning(f"{kind}_pause", "critical",
                           f"{kind} rate {_percent(rate)} is at or above SES's "
                           f"{_percent(pause)} line where sending may be paused")
    if rate >= review:
        return RateWarning(f"{kind}_review", "critical",
                           f"{kind} rate {_percent(rate)} is at or above SES's "
                           f"{_percent(review)} review threshold")
    if rate >= review * EARLY_WARNING_SHARE:
        return RateWarning(f"{kind}_near_review", "warning",
                           f"{kind} rate {_percent(rate)} nears SES's "
                           f"{_percent(review)} review threshold")
    return None


def bounce_warnings(rate: float | None) -> list[RateWarning]:
    if rate is None:
        return []
    warning = _ses_warning("bounce", rate, BOUNCE_REVIEW, BOUNCE_PAUSE)
    return [warning] if warning else []


def complaint_warnings(rate: float | None) -> list[RateWarning]:
    if rate is None:
        return []
    warning = _ses_warning("complaint", rate, COMPLAINT_REVIEW, COMPLAINT_PAUSE)
    warnings = [warning] if warning else []
    if rate >= GMAIL_SPAM_LINE:
        warnings.append(RateWarning("gmail_spam", "critical",
                                    f"complaint rate {_percent(rate)} is at or above Gmail's "
                                    f"{_percent(GMAIL_SPAM_LINE)} spam-rate line"))
    return warnings


__all__ = [
    "BOUNCE_PAUSE", "BOUNCE_REVIEW", "COMPLAINT_PAUSE", "COMPLAINT_REVIEW", "EARLY_WARNING_SHARE",
    "GMAIL_SPAM_LINE", "RateWarning", "bounce_warnings", "complaint_warnings", "rate",
    "rate_property",
]
