"""The web app's rate-limit counts, kept in the database so every `mailer serve` process shares them.

One row per (limit, client key, time bucket) holds how many hits that client made in that bucket;
a limit's window is the sum of its last buckets. The client key is a keyed hash (HMAC with
MAILER_SECRET_KEY) of the network or mailbox, so the table holds no address, and rows older than
their window are pruned, so it holds only the last hour or so. Migration 0007.

Counting is atomic across processes: ``add_hit`` locks the client's key (SQLite's one writer
lock; a transaction-scoped advisory lock on PostgreSQL), adds one with an UPSERT, reads the sum
and commits only when it is within the limit, so two processes can never both let in the last
allowed hit, and no increment is lost.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, Integer, delete, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from mailer.store.models import table_of


class RateLimitHit(SQLModel, table=True):
    """Hits of one client against one limit within one time bucket (migration 0007)."""

    __tablename__ = "rate_limit_hit"
    __table_args__ = (Index("ix_rate_limit_hit_bucket", "bucket"),)

    scope: str = Field(primary_key=True, max_length=32)  # which limit: "subscribe", "login", ...
    key_hash: str = Field(primary_key=True, max_length=32)  # HMAC of the network, never the IP
    # the bucket's start, in whole seconds since the epoch (all processes share the wall clock)
    bucket: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hits: int = Field(sa_column=Column(Integer, nullable=False))


KEY_HASH_CHARS = 32


def key_hash(secret: str, scope: str, key: str) -> str:
    """The client key as stored: keyed, so nobody with the database can list who hit a limit."""
    digest = hmac.new(secret.encode(), f"{scope}\0{key}".encode(), hashlib.sha256).hexdigest()
    return digest[:KEY_HASH_CHARS]


@dataclass(frozen=True)
class Window:
    """A limit's window as buckets: ``width`` whole seconds each, ``seconds`` long in all."""

    seconds: float
    width: int

    def bucket_of(self, now: float) -> int:
        return int(now // self.width) * self.width

    def oldest_counted(self, now: float) -> int:
        # A bucket counts while any part of it is in the window: a hit may be held up to one
        # bucket longer than the window, never shorter, so no window holds more than the limit.
        return int((now - self.seconds) // self.width) * self.width

    def frees_at(self, bucket: int) -> float:
        return bucket + self.width + self.seconds


def window_of(seconds: float) -> Window:
    """About sixty buckets a window: one second for a minute's limit, a minute for an hour's."""
    return Window(seconds=seconds, width=max(1, int(seconds // 60)))


# Plain SQL, built once: the same text on SQLite (3.24+) and PostgreSQL, and building SQLAlchemy
# statements per request cost more than running them (benchmarks/web_limits.py).
INCREMENT = text(
    "INSERT INTO rate_limit_hit (scope, key_hash, bucket, hits) VALUES (:scope, :key, :bucket, 1) "
    "ON CONFLICT (scope, key_hash, bucket) DO UPDATE SET hits = rate_limit_hit.hits + 1")
RECENT = text(
    "SELECT bucket, hits FROM rate_limit_hit "
    "WHERE scope = :scope AND key_hash = :key AND bucket >= :since ORDER BY bucket")
LOCK = text("SELECT pg_advisory_xact_lock(:id)")
# A count lost in a crash costs nothing worth a disk flush on every counted request.
NO_FLUSH = text("SET LOCAL synchronous_commit TO off")


def _lock_key(connection: Connection, scope: str, hashed: str) -> None:
    """Serialise the hits of one client key until commit (SQLite's writer lock does this already),
    and on PostgreSQL commit without waiting for the disk."""
    if connection.dialect.name == "postgresql":
        lock_id = int.from_bytes(hashlib.sha256(f"{scope}\0{hashed}".encode()).digest()[:8],
                                 "big", signed=True)
        connection.execute(NO_FLUSH)
        connection.execute(LOCK, {"id": lock_id})


def _increment(connection: Connection, scope: str, hashed: str, bucket: int) -> None:
    connection.execute(INCREMENT, {"scope": scope, "key": hashed, "bucket": bucket})


def _buckets(connection: Connection, scope: str, hashed: str, since: int) -> list[tuple[int, int]]:
    rows = connection.execute(RECENT, {"scope": scope, "key": hashed, "since": since})
    return [(int(bucket), int(hits)) for bucket, hits in rows]


def wait_for(buckets: list[tuple[int, int]], limit: int, window: Window, now: float) -> float | None:
    """Seconds until fewer than ``limit`` hits are left in the window, or None when that is now."""
    total = sum(hits for _, hits in buckets)
    for bucket, hits in buckets:
        if total < limit:
            break
        total -= hits
        if total < limit:
            return max(window.frees_at(bucket) - now, 0.001)
    return None


def add_hit(engine: Engine, scope: str, hashed: str, limit: int | None, window: Window,
            now: float) -> float | None:
    """Count one hit unless ``limit`` hits are in the window already (then nothing is written
    and the answer is the seconds to wait). ``limit=None`` counts the hit whatever the total."""
    with engine.connect() as connection:
        with connection.begin() as transaction:
            _lock_key(connection, scope, hashed)
            # the write first: on SQLite it takes the writer lock, and what is read next is then
            # the newest state, with no other process between this read and the commit
            _increment(connection, scope, hashed, window.bucket_of(now))
            if limit is None:
                return None
            buckets = _buckets(connection, scope, hashed, window.oldest_counted(now))
            if sum(hits for _, hits in buckets) <= limit:
                return None
            transaction.rollback()  # over the limit: this hit is not counted
            before = [(b, h - 1 if b == window.bucket_of(now) else h) for b, h in buckets]
            return wait_for([(b, h) for b, h in before if h > 0], limit, window, now)


def recent_buckets(engine: Engine, scope: str, hashed: str, window: Window,
                   now: float) -> list[tuple[int, int]]:
    with engine.connect() as connection:
        return _buckets(connection, scope, hashed, window.oldest_counted(now))


def prune(engine: Engine, scope: str, window: Window, now: float) -> int:
    """Forget the buckets of ``scope`` that no longer count; returns how many rows went."""
    table = table_of(RateLimitHit)
    with engine.begin() as connection:
        result = connection.execute(delete(table).where(
            table.c.scope == scope, table.c.bucket < window.oldest_counted(now)))
    return result.rowcount or 0


def row_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table_of(RateLimitHit)))
                   .scalar() or 0)


__all__ = ["RateLimitHit", "Window", "add_hit", "key_hash", "prune", "recent_buckets",
           "row_count", "wait_for", "window_of"]
