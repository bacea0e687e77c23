"""Send workers: who they are (host:pid:random), their heartbeats, and the clean-up after one
that died (its in-flight rows become ``unknown``, its leased rows go back to the queue).

Re-exported by :mod:`mailer.store.ledger` under the same names.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, insert, or_, select, true, update
from sqlalchemy.engine import Connection, Engine

from mailer.domain import DeliveryStatus, utcnow
from mailer.store.ledger_writes import writing
from mailer.store.models import Delivery, SendWorker, table_of

D = table_of(Delivery)
W = table_of(SendWorker)

DEFAULT_STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Recovery:
    """What a start found left behind by workers that died."""

    unknown: int  # rows that were in flight: maybe sent, now `unknown`
    released: int  # leased but untouched rows, back in the queue
    dead_workers: tuple[str, ...]


# -- worker identity ---------------------------------------------------------------------------

def new_worker_id() -> str:
    """host:pid:random — the host and pid let a restart on the same machine see a dead peer at
    once instead of waiting for its heartbeat to go stale."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def worker_is_dead_locally(worker_id: str) -> bool:
    """True when ``worker_id`` names a process on this host that no longer exists."""
    host, _, rest = worker_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


# -- workers and recovery ----------------------------------------------------------------------

def register_worker(engine: Engine, worker_id: str, campaign_id: int, rate: float) -> None:
    with writing(engine) as connection:
        connection.execute(insert(W).values(id=worker_id, campaign_id=campaign_id,
                                             heartbeat_at=utcnow(), rate=rate))


def heartbeat(engine: Engine, worker_id: str, rate: float,
              *, stale_after: timedelta = DEFAULT_STALE_AFTER) -> int:
    """Refresh our heartbeat; return how many live workers share our campaign (us included)."""
    now = utcnow()
    with writing(engine) as connection:
        connection.execute(update(W).where(W.c.id == worker_id).values(heartbeat_at=now, rate=rate))
        campaign_id = connection.execute(
            select(W.c.campaign_id).where(W.c.id == worker_id)
        ).scalar_one_or_none()
        if campaign_id is None:
            return 1
        peers = connection.execute(
            select(W.c.id).where(W.c.campaign_id == campaign_id,
                                 W.c.heartbeat_at >= now - stale_after)
        ).scalars().all()
    return max(1, sum(1 for peer in peers if not worker_is_dead_locally(peer)))


def live_workers(engine: Engine, campaign_id: int,
                 *, stale_after: timedelta = DEFAULT_STALE_AFTER) -> int:
    with engine.connect() as connection:
        peers = connection.execute(
            select(W.c.id).where(W.c.campaign_id == campaign_id,
                                 W.c.heartbeat_at >= utcnow() - stale_after)
        ).scalars().all()
    return sum(1 for peer in peers if not worker_is_dead_locally(peer))


def unregister_worker(engine: Engine, worker_id: str) -> None:
    """Leave cleanly: give back leased rows we never started, drop our worker row."""
    with writing(engine) as connection:
        _release(connection, D.c.claimed_by == worker_id)
        connection.execute(delete(W).where(W.c.id == worker_id))


def recover_abandoned(
    engine: Engine,
    campaign_id: int,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    is_dead: Callable[[str], bool] = worker_is_dead_locally,
) -> Recovery:
    """Clean up after workers that died: their in-flight rows become ``unknown``, their leased
    queued rows go back to the queue. A worker is dead when its heartbeat is older than
    ``stale_after`` or its pid on this host is gone; rows leased by a worker with no row at all
    count as abandoned too."""
    cutoff = utcnow() - stale_after
    with writing(engine) as connection:
        workers = connection.execute(
            select(W.c.id, W.c.heartbeat_at).where(W.c.campaign_id == campaign_id)
        ).all()
        dead = tuple(wid for wid, beat in workers if beat < cutoff or is_dead(wid))
        live = [wid for wid, _ in workers if wid not in dead]
        abandoned = or_(D.c.claimed_by.is_(None), D.c.claimed_by.not_in(live)) if live else true()
        unknown = connection.execute(
            update(D).where(D.c.campaign_id == campaign_id,
                            D.c.status == DeliveryStatus.SENDING.value, abandoned)
            .values(status=DeliveryStatus.UNKNOWN.value,
                    error="in flight when its worker died: maybe sent, maybe not")
        ).rowcount
        released = _release(
            connection,
            and_(D.c.campaign_id == campaign_id, D.c.claimed_by.is_not(None), abandoned),
        )
        if dead:
            connection.execute(delete(W).where(W.c.id.in_(dead)))
    return Recovery(unknown=unknown, released=released, dead_workers=dead)


def _release(connection: Connection, condition) -> int:
    return connection.execute(
        update(D).where(condition, D.c.status == DeliveryStatus.QUEUED.value)
        .values(claimed_by=None, claimed_at=None)
    ).rowcount
