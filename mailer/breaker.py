"""The reputation circuit breaker's rule (issue 11 §2). Pure: figures in, a reason out.

SES puts an account under review at a 5 % bounce or 0.1 % complaint rate. A send checks its
campaign's figures every few seconds and pauses when hard bounces reach ``bounce_rate`` of the
messages sent, or complaints ``complaint_rate`` of those delivered, well under those lines. A
rate counts only once its sample (sent / delivered) and its events (bounces / complaints) reach
their minimums, so one early complaint does not stop a send.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailer.domain import Reputation


@dataclass(frozen=True)
class Thresholds:
    bounce_rate: float = 0.025
    complaint_rate: float = 0.0005
    min_sent: int = 500
    min_bounces: int = 5
    min_delivered: int = 500
    min_complaints: int = 2

    @classmethod
    def from_settings(cls, settings) -> Thresholds:
        return cls(
            bounce_rate=settings.breaker_bounce_rate,
            complaint_rate=settings.breaker_complaint_rate,
            min_sent=settings.breaker_min_sent, min_bounces=settings.breaker_min_bounces,
            min_delivered=settings.breaker_min_delivered,
            min_complaints=settings.breaker_min_complaints,
        )

    def crossed(self, figures: Reputation) -> str | None:
        """One line saying which threshold the figures cross, or None while they hold."""
        if (self.complaint_rate and figures.delivered >= self.min_delivered
                and figures.complaints >= self.min_complaints
                and figures.complaints / figures.delivered >= self.complaint_rate):
            return (f"complaints {figures.complaints} of {figures.delivered} delivered = "
                    f"{_pct(figures.complaints / figures.delivered)}, at or above "
                    f"{_pct(self.complaint_rate)}")
        if (self.bounce_rate and figures.sent >= self.min_sent
                and figures.hard_bounces >= self.min_bounces
                and figures.hard_bounces / figures.sent >= self.bounce_rate):
            return (f"hard bounces {figures.hard_bounces} of {figures.sent} sent = "
                    f"{_pct(figures.hard_bounces / figures.sent)}, at or above "
                    f"{_pct(self.bounce_rate)}")
        return None


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f} %"
