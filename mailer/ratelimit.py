"""A thread-safe pacing limiter with additive-increase / multiplicative-decrease. Pure.

Worker threads ask :meth:`RateLimiter.acquire` for a send slot. Slots are handed out on a
schedule (one every ``1 / rate`` seconds) rather than from a bucket refilled by a timer, so the
long-run rate is exact however many threads wait, and a short burst is allowed only up to
``burst`` slots (SES counts its MaxSendRate over about a second).

On a throttle the provider told us we are too fast: the rate is halved (never below ``floor``)
and then creeps back up by ``ceiling * increase_fraction`` per second of success, the AIMD rule
TCP uses, so a shared account finds its real limit without a human.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        floor: float = 0.5,
        increase_fraction: float = 0.05,
        decrease_cooldown: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._lock = threading.Lock()
        self._clock = clock
        self._ceiling = rate
        self._rate = rate
        self._burst = max(1.0, burst)
        self._floor = min(floor, rate)
        self._increase_fraction = increase_fraction
        self._decrease_cooldown = decrease_cooldown
        self._last_decrease = float("-inf")
        self._next_slot = clock()
        self._last_adjust = clock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def ceiling(self) -> float:
        return self._ceiling

    def set_ceiling(self, rate: float) -> None:
        """A new upper bound (the process's share of the total changed); keeps any slow-down."""
        with self._lock:
            self._ceiling = max(rate, 0.01)
            self._floor = min(self._floor, self._ceiling)
            self._rate = min(self._rate, self._ceiling)  # a raised ceiling is reached gradually

    def reserve(self) -> float:
        """Take the next slot; return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._recover(now)
            interval = 1.0 / self._rate
            # Idle time earns at most `burst` slots of credit, never an unbounded burst.
            earliest = now - (self._burst - 1.0) * interval
            slot = max(self._next_slot, earliest)
            self._next_slot = slot + interval
            return max(0.0, slot - now)

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot. Returns False (without sending) when ``stop`` is set while waiting."""
        delay = self.reserve()
        if delay > 0:
            if stop is not None:
                return not stop.wait(delay)
            time.sleep(delay)
        return not (stop is not None and stop.is_set())

    def acquire_many(self, count: int, stop: threading.Event | None = None) -> bool:
        """Wait for ``count`` slots (messages handed over in one call): the call goes when the
        last of them is due, so the rate counts messages, not calls."""
        delay = 0.0
        for _ in range(max(1, count)):
            delay = self.reserve()
        if delay > 0:
            if stop is not None:
                return not stop.wait(delay)
            time.sleep(delay)
        return not (stop is not None and stop.is_set())

    def throttled(self) -> None:
        """The provider said slow down: halve the rate and push the schedule back.

        Messages already in flight at the old rate get throttled too; counting each of them
        would collapse the rate, so one halving per ``decrease_cooldown`` seconds."""
        with self._lock:
            now = self._clock()
            if now - self._last_decrease >= self._decrease_cooldown:
                self._rate = max(self._floor, self._rate / 2.0)
                self._last_decrease = now
            self._last_adjust = now
            self._next_slot = max(self._next_slot, now) + 1.0 / self._rate

    def _recover(self, now: float) -> None:
        if self._rate >= self._ceiling:
            self._last_adjust = now
            return
        elapsed = now - self._last_adjust
        if elapsed >= 1.0:
            step = self._ceiling * self._increase_fraction * elapsed
            self._rate = min(self._ceiling, self._rate + step)
            self._last_adjust = now


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0,
                  rand: Callable[[], float] | None = None) -> float:
    """Exponential backoff with "equal jitter" for retry number ``attempt`` (1 = first retry):
    at least half the exponential step, so retries really back off, and spread over the other
    half, so many threads failing together do not retry together."""
    import random

    step = min(cap, base * (2 ** max(0, attempt - 1)))
    return step / 2 + (rand or random.random)() * step / 2


# -- how many messages in flight: Little's law on the latency actually observed -----------------

class ConcurrencyGate:
    """Lets at most :attr:`limit` sender threads work at once, the limit sized from the rate and
    the time each message really occupies a thread (Little's law: in flight = rate × time),
    with ``headroom`` for jitter and capped at ``cap`` (the threads that exist).

    The time is an exponentially weighted mean of :meth:`observe` calls, so the limit follows
    the provider's latency as it changes; ``fixed`` disables the sizing (``--concurrency``).
    """

    def __init__(self, cap: int, *, fixed: bool = False, initial_latency: float = 0.1,
                 headroom: float = 1.5, spare: int = 2, smoothing: float = 0.1) -> None:
        self.cap = max(1, cap)
        self.fixed = fixed
        self._latency = initial_latency
        self._headroom, self._spare, self._smoothing = headroom, spare, smoothing
        self._rate = 1.0
        self._limit = self.cap
        self._in_use = 0
        self._changed = threading.Condition()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def latency(self) -> float:
        return self._latency

    def size_for(self, rate: float) -> None:
        """The rate the limit must sustain (this worker's share of the campaign's rate)."""
        with self._changed:
            self._rate = rate
            self._resize()

    def observe(self, seconds: float) -> None:
        """How long one message occupied its thread (transport call and ledger writes)."""
        with self._changed:
            self._latency += self._smoothing * (seconds - self._latency)
            self._resize()

    def _resize(self) -> None:
        if self.fixed:
            return
        wanted = math.ceil(round(self._rate * self._latency * self._headroom, 3)) + self._spare
        self._limit = max(1, min(self.cap, wanted))
        self._changed.notify_all()

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for a free place; False when ``stop`` is set meanwhile."""
        with self._changed:
            while self._in_use >= self._limit:
                if stop.is_set():
                    return False
                self._changed.wait(0.2)
            self._in_use += 1
            return True

    def release(self) -> None:
        with self._changed:
            self._in_use -= 1
            self._changed.notify()
