"""A send's options, its pace, its running counts and its report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from mailer.breaker import Thresholds
from mailer.domain import SendQuota
from mailer.store.ledger import DEFAULT_STALE_AFTER

@dataclass(frozen=True)
class SendOptions:
    rate: float  # messages per second for the whole campaign (before sharing with peers)
    concurrency: int = 16  # sender threads; with size_concurrency, the most in flight
    size_concurrency: bool = False  # in flight = rate x observed latency (Little's law)
    limit: int | None = None  # --limit: send at most this many rows now, then stop
    batch_size: int = 50
    max_attempts: int = 5  # temporary failures per row before it fails
    heartbeat_interval: float = 5.0
    stale_after: timedelta = DEFAULT_STALE_AFTER
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_lost_in_a_row: int = 20  # lost answers with no success between them: stop the send
    max_gave_up_in_a_row: int = 3  # rows out of temporary tries, none taken meanwhile: outage
    max_refused_in_a_row: int = 5  # rows refused for good, none taken meanwhile: the message's
    breaker: Thresholds | None = None  # pause the campaign when one is crossed
    breaker_interval: float = 5.0  # seconds between reputation checks
    canary_only: bool = False  # send only the campaign's canary sample


def effective_rate(requested: float, quota: SendQuota | None) -> float:
    """The lower of what the operator asked for and what the account allows."""
    if quota is not None and quota.max_send_rate and quota.max_send_rate > 0:
        return min(requested, quota.max_send_rate)
    return requested


MAX_SENDERS = 64  # sender threads when concurrency is sized from the rate and the latency


def choose_rate(quota: SendQuota | None, *, requested: float | None, configured: float | None,
                default: float) -> tuple[float, str]:
    """The campaign's rate and where it comes from (issue 11): the account's MaxSendRate when
    the provider reports one, lowered only by ``--rate`` (``requested``) or an explicitly set
    MAILER_SEND_RATE (``configured``); without an account rate (SMTP, outbox), those or the
    configured default."""
    asked, source = (requested, "--rate") if requested else (configured, "MAILER_SEND_RATE")
    account = quota.max_send_rate if quota is not None and quota.max_send_rate else None
    if account is None or account <= 0:
        return (asked, source) if asked else (default, "the default MAILER_SEND_RATE")
    if asked and asked < account:
        return asked, f"{source}; the account allows {account:g}"
    return account, "the account's MaxSendRate"


def choose_concurrency(requested: int | None, configured: int | None) -> tuple[int, bool]:
    """(sender threads, size them from rate and latency?): ``--concurrency`` or an explicitly
    set MAILER_SEND_CONCURRENCY fixes the number; otherwise Little's law sizes it."""
    fixed = requested or configured
    return (fixed, False) if fixed else (MAX_SENDERS, True)


@dataclass
class RunCounts:
    """What one run has done so far, counted as it goes (``Dispatcher.progress``)."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    throttled: int = 0
    retried: int = 0
    lost_lease: int = 0
    unknown: int = 0  # answers lost: maybe sent, left for an event to settle
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class SendReport:
    campaign_id: int
    sent: int
    failed: int
    skipped: int
    throttled: int
    retried: int
    elapsed: float
    finished: bool  # the campaign has no queued or in-flight rows left
    stop_reason: str | None  # why this run stopped early (None: ran out of rows)
    account_error: bool  # stopped by the provider: the campaign is `stopped`
    limit_reached: bool = False
    unknown: int = 0  # rows this run left `unknown` because their answer was lost
    paused: bool = False  # the reputation breaker paused the campaign (this worker or a peer)
    outage: bool = False  # the provider kept answering with temporary errors: rows still queued
    disk_full: bool = False  # the outbox's or the database's disk is full: rows still queued
    notices: tuple[str, ...] = ()  # for the operator, not failures (no SendBulkEmail: one by one)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.account_error


_M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each sender thread its own malloc arena, each keeping freed ~100 KB message
    buffers: with 16 threads that is ~25 MB of RSS for nothing. Two arenas cost no measurable
    speed here (the GIL serialises the allocations anyway). No-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass
