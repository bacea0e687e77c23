"""The reputation circuit breaker's rule (issue 11 §2). Pure: figures in, a reason out.

SES puts an account under review at a 5 % bounce or 0.1 % complaint rate. A send checks its
campaign's figures every few seconds and pauses when its bounce rate (hard bounces ÷ sent)
reaches ``bounce_rate`` or its complaint rate (complaints ÷ delivered) reaches ``complaint_rate``,
well under those lines: the rates of :mod:`mailer.figures`, which every page shows too. A
rate counts only once its sample (sent / delivered) and its events (bounces / complaints) reach
their minimums, so one early complaint does not stop a send.

A few complaints are what a few people can send on purpose (sock-puppet subscribers), and on a
small list a few are already over the rate. So :meth:`Thresholds.for_campaign` raises the
minimum complaints to more than SES's own review line (0.1 %) of the campaign's readers, capped
at ``few_complaints``: two complaints can no longer pause a 2,000-reader send (they are 0.1 %
of it however early they come), while a wave of complaints still pauses any send.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mailer.domain import Reputation
from mailer.figures import percent
from mailer.rate_warnings import COMPLAINT_REVIEW


@dataclass(frozen=True)
class Thresholds:
    bounce_rate: float = 0.025
    complaint_rate: float = 0.0005
    min_sent: int = 500
    min_bounces: int = 5
    min_delivered: int = 500
    min_complaints: int = 2
    few_complaints: int = 5  # the most complaints for_campaign may ask for before a pause

    @classmethod
    def from_settings(cls, settings) -> Thresholds:
        return cls(
            bounce_rate=settings.breaker_bounce_rate,
            complaint_rate=settings.breaker_complaint_rate,
            min_sent=settings.breaker_min_sent, min_bounces=settings.breaker_min_bounces,
            min_delivered=settings.breaker_min_delivered,
            min_complaints=settings.breaker_min_complaints,
            few_complaints=settings.breaker_few_complaints,
        )

    def for_campaign(self, readers: int) -> Thresholds:
        """The rule for a campaign of ``readers``: complaints count once they are more than
        0.1 % of them, or ``few_complaints``, whichever is fewer (never under min_complaints)."""
        beyond_review = int(readers * COMPLAINT_REVIEW) + 1
        needed = max(self.min_complaints, min(self.few_complaints, beyond_review))
        return dataclasses.replace(self, min_complaints=needed)

    def crossed(self, figures: Reputation) -> str | None:
        """One line saying which threshold the figures cross, or None while they hold. The rates
        are :mod:`mailer.figures`' (the ones ``mailer stats`` and the console show)."""
        if figures.delivered >= self.min_delivered and figures.complaints >= self.min_complaints:
            if reason := _at_or_over("complaints", figures.complaints, "delivered",
                                     figures.delivered, figures.complaint_rate,
                                     self.complaint_rate):
                return reason
        if figures.sent >= self.min_sent and figures.hard_bounces >= self.min_bounces:
            return _at_or_over("hard bounces", figures.hard_bounces, "sent", figures.sent,
                               figures.bounce_rate, self.bounce_rate)
        return None


def _at_or_over(what: str, part: int, of: str, whole: int, rate: float | None,
                line: float) -> str | None:
    """``part`` of ``whole`` (their ``rate``) said in words, when it reaches the ``line`` (0 turns
    a rule off)."""
    if not line or rate is None or rate < line:
        return None
    return f"{what} {part} of {whole} {of} = {percent(rate)}, at or above {percent(line)}"
