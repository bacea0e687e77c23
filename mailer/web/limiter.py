"""The sliding-window limits of the web app: sign-ups per network, failed operator log-ins
per network and in total, operator actions per client.

The web app counts in the database (``DatabaseWindowLimiter``, mailer.store.limits), so several
`mailer serve` processes behind the proxy limit as one. ``SlidingWindowLimiter`` counts in
process memory, for one process (and as the baseline benchmarks/web_limits.py measures against).
Keys are whatever the caller groups by (an IPv4 address, an IPv6 /64, "*" for everyone).
A limit keyed "*" must never refuse a right credential or a real reader: one attacker could
fill it for everyone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy.engine import Engine

from mailer.store import limits

GLOBAL_KEY = "*"


class SlidingWindowLimiter:
    """At most ``limit`` hits per ``window`` seconds per key (a sliding window), thread-safe."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    def hit(self, key: str) -> float | None:
        """Count one hit; return None when allowed, else the seconds until the next is allowed."""
        now = self._clock()
        with self._lock:
            hits = self._recent(key, now)
            if len(hits) >= self.limit:
                return self._wait(hits, now)
            hits.append(now)
            return None

    def blocked(self, key: str) -> float | None:
        """The seconds until ``key`` may hit again, or None when it may now; counts nothing."""
        now = self._clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                return None
            self._drop_old(hits, now)
            return self._wait(hits, now) if len(hits) >= self.limit else None

    def record(self, key: str) -> None:
        """Count one hit whatever the limit (a failed log-in happened, allowed or not)."""
        now = self._clock()
        with self._lock:
            self._recent(key, now).append(now)

    def count(self, key: str) -> int:
        now = self._clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                return 0
            self._drop_old(hits, now)
            return len(hits)

    def _recent(self, key: str, now: float) -> deque[float]:
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._forget_idle(now)
        hits = self._hits.setdefault(key, deque())
        self._drop_old(hits, now)
        return hits

    def _wait(self, hits: deque[float], now: float) -> float:
        return max(hits[-self.limit] + self.window - now, 0.001)

    def _drop_old(self, hits: deque[float], now: float) -> None:
        while hits and hits[0] <= now - self.window:
            hits.popleft()

    def _forget_idle(self, now: float) -> None:
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            # a flood of distinct keys: losing counts is better than unbounded memory
            self._hits.clear()


class DatabaseWindowLimiter:
    """``SlidingWindowLimiter``'s methods, with the counts in the database: every process that
    shares the database shares the limit. The window is about sixty buckets (see
    mailer.store.limits), so a hit counts for up to one bucket longer than ``window``, never less.

    ``scope`` names the limit in the table; keys are stored as an HMAC under ``secret``.
    """

    def __init__(self, scope: str, limit: int, window: float, *, engine: Callable[[], Engine],
                 secret: str, clock: Callable[[], float] = time.time) -> None:
        self.scope, self.limit, self.window = scope, limit, window
        self._engine, self._secret, self._clock = engine, secret, clock
        self._buckets = limits.window_of(window)
        self._next_prune = float("-inf")
        self._prune_lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    def hit(self, key: str) -> float | None:
        """Count one hit; return None when allowed, else the seconds until the next is allowed."""
        now = self._clock()
        self._prune_now_and_then(now)
        return limits.add_hit(self._engine(), self.scope, self._hash(key), self.limit,
                              self._buckets, now)

    def blocked(self, key: str) -> float | None:
        """The seconds until ``key`` may hit again, or None when it may now; counts nothing."""
        now = self._clock()
        return limits.wait_for(self._recent(key, now), self.limit, self._buckets, now)

    def record(self, key: str) -> None:
        """Count one hit whatever the limit (a failed log-in happened, allowed or not)."""
        now = self._clock()
        self._prune_now_and_then(now)
        limits.add_hit(self._engine(), self.scope, self._hash(key), None, self._buckets, now)

    def count(self, key: str) -> int:
        return sum(hits for _, hits in self._recent(key, self._clock()))

    def _recent(self, key: str, now: float) -> list[tuple[int, int]]:
        return limits.recent_buckets(self._engine(), self.scope, self._hash(key), self._buckets, now)

    def _hash(self, key: str) -> str:
        return limits.key_hash(self._secret, self.scope, key)

    def _prune_now_and_then(self, now: float) -> None:
        # once a window per process is enough to keep the table at about one window of rows
        with self._prune_lock:
            if now < self._next_prune:
                return
            self._next_prune = now + self.window
        limits.prune(self._engine(), self.scope, self._buckets, now)


WindowLimiter = SlidingWindowLimiter | DatabaseWindowLimiter


class FailedLoginGuard:
    """Failed operator log-ins, per client network and in total.

    A network over its limit is refused before its guess is checked, so a right guess from it
    does not get in either. The total is only an alarm: refusing everyone over it would let any
    attacker lock every operator out, so it logs a warning (once per window) and refuses nobody.
    """

    def __init__(self, per_network: WindowLimiter, overall: WindowLimiter,
                 log: logging.Logger | None = None) -> None:
        self.per_network = per_network
        self.overall = overall
        self.log = log or logging.getLogger("mailer.web")
        self._alarm_until = float("-inf")

    def retry_after(self, network: str) -> float | None:
        return self.per_network.blocked(network)

    def record_failure(self, network: str) -> None:
        self.per_network.record(network)
        if self.overall.hit(GLOBAL_KEY) is not None:
            self._raise_alarm()

    def _raise_alarm(self) -> None:
        now = self.overall.now()
        if now < self._alarm_until:
            return
        self._alarm_until = now + self.overall.window
        self.log.warning(
            "more than %s failed operator log-ins in the last %d minutes, from many networks: "
            "someone may be guessing the admin password. Each network is limited on its own; "
            "operators can still log in. Check that MAILER_ADMIN_PASSWORD is long and random.",
            self.overall.limit, self.overall.window // 60)
