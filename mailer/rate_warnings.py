"""The lines SES and Gmail draw on the delivery rates, and the warnings they give. Pure: rates
in, warnings out.

The rates themselves (bounce rate = hard bounces ÷ sent, complaint rate = complaints ÷
delivered) are defined once, in :mod:`mailer.figures`.

These are the provider's lines, used to warn an operator about a campaign's figures. The
reputation breaker (:mod:`mailer.breaker`) has lines of its own, set well below these and
configurable, that pause a send in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailer.figures import line_percent, percent, rate

# SES puts an account under review at a 5 % bounce rate and may pause it at 10 %; complaints:
# 0.1 % review, 0.5 % pause. Gmail wants spam complaints under 0.3 %. We warn at half the review
# line, while there is still time to clean the list.
BOUNCE_REVIEW = 0.05
BOUNCE_PAUSE = 0.10
COMPLAINT_REVIEW = 0.001
COMPLAINT_PAUSE = 0.005
GMAIL_SPAM_LINE = 0.003
EARLY_WARNING_SHARE = 0.5


def rate_property(part: str, whole: str = "sent") -> property:
    """A read-only property: the count field ``part`` over the count field ``whole``."""
    return property(lambda figures: rate(getattr(figures, part), getattr(figures, whole)),
                    doc=f"{part} / {whole}, or None while {whole} is 0")


@dataclass(frozen=True)
class RateWarning:
    code: str  # stable: bounce_near_review, bounce_review, bounce_pause, complaint_..., gmail_spam
    level: str  # "warning" (act soon) or "critical" (SES or Gmail acts on it)
    message: str


def _ses_warning(kind: str, rate: float, review: float, pause: float) -> RateWarning | None:
    """Where ``rate`` stands against SES's lines for ``kind`` ("bounce" or "complaint")."""
    if rate >= pause:
        return RateWarning(f"{kind}_pause", "critical",
                           f"{kind} rate {percent(rate)} is at or above SES's "
                           f"{line_percent(pause)} line where sending may be paused")
    if rate >= review:
        return RateWarning(f"{kind}_review", "critical",
                           f"{kind} rate {percent(rate)} is at or above SES's "
                           f"{line_percent(review)} review threshold")
    if rate >= review * EARLY_WARNING_SHARE:
        return RateWarning(f"{kind}_near_review", "warning",
                           f"{kind} rate {percent(rate)} nears SES's "
                           f"{line_percent(review)} review threshold")
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
                                    f"complaint rate {percent(rate)} is at or above Gmail's "
                                    f"{line_percent(GMAIL_SPAM_LINE)} spam-rate line"))
    return warnings


__all__ = [
    "BOUNCE_PAUSE", "BOUNCE_REVIEW", "COMPLAINT_PAUSE", "COMPLAINT_REVIEW", "EARLY_WARNING_SHARE",
    "GMAIL_SPAM_LINE", "RateWarning", "bounce_warnings", "complaint_warnings", "rate",
    "rate_property",
]
