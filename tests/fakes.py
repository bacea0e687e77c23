"""The test doubles and seeding helpers the tests share: one copy of each, imported from here (no
test module imports from another).

A double stands in only where no real part can: a transport that records instead of sending, a
clock a test moves by hand. Readers are written straight into the real database, because a
`mailer subscribers add` per reader would cost a process each.
"""

from __future__ import annotations

import threading
from datetime import datetime
import time

from sqlalchemy import insert, select

from mailer.domain import utcnow
from mailer.errors import TemporaryFailure
from mailer.store.models import Subscriber


class RecordingTransport:
    """A transport that accepts every message and keeps it, unless told otherwise: ``script``
    (address → errors to raise, one per attempt), ``fail`` (every send is refused as a relay that
    is down would), ``latency`` (seconds per send), ``on_send`` (called with each accepted
    message). Thread-safe, and counts the sends in flight, for the dispatcher's workers."""

    name = "fake"

    def __init__(self, *, latency: float = 0.0, script: dict | None = None, on_send=None,
                 fail: bool = False) -> None:
        self.latency = latency
        self.script = script or {}
        self.on_send = on_send
        self.fail = fail
        self.accepted: list = []
        self.attempts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    @property
    def sent(self) -> list:
        """The messages accepted, in order (the web tests' word for them)."""
        return self.accepted

    def preflight(self):
        return None

    def send(self, message) -> str:
        with self._lock:
            self.attempts += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            planned = self.script.get(message.to)
            error = planned.pop(0) if planned else None
        try:
            if self.fail:
                raise TemporaryFailure("connection refused by smtp.internal:25")
            if self.latency:
                time.sleep(self.latency)
            if error is not None:
                raise error
            if self.on_send:
                self.on_send(message)
            with self._lock:
                self.accepted.append(message)
                return f"provider-{len(self.accepted)}"
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        pass

    def copies(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.accepted:
            counts[message.to] = counts.get(message.to, 0) + 1
        return counts


class FakeClock:
    """A monotonic clock that stands still until a test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def add_readers(engine, *addresses: str, status: str = "active") -> None:
    """These addresses as readers, straight into the database."""
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(insert(Subscriber.__table__), [
            dict(email=address, status=status, created_at=now, updated_at=now)
            for address in addresses])


def add_reader_rows(engine, count: int, *, status: str = "active", start: int = 0) -> list[int]:
    """``count`` readers ``reader{start}@example.org`` onwards; their ids, in order."""
    now = utcnow()
    rows = [dict(email=f"reader{n}@example.org", status=status, created_at=now, updated_at=now)
            for n in range(start, start + count)]
    with engine.begin() as connection:
        connection.execute(insert(Subscriber.__table__), rows)
        return list(connection.execute(
            select(Subscriber.__table__.c.id).where(
                Subscriber.__table__.c.email.in_([row["email"] for row in rows]))
            .order_by(Subscriber.__table__.c.id)).scalars())


def ses_event(kind: str, message: dict, at: datetime) -> dict:
    """The SES event the configuration set publishes for a message it took, matched by the
    ledger tags the message carries (no message id ever reached mailer for a lost answer)."""
    tags = {tag["Name"]: [tag["Value"]] for tag in message["tags"]}
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    event = {"eventType": kind,
             "mail": {"timestamp": stamp, "messageId": message["id"],
                      "source": "newsletter@example.org", "destination": message["destinations"],
                      "tags": tags}}
    if kind == "Send":
        event["send"] = {}
    else:
        event["delivery"] = {"timestamp": stamp, "recipients": message["destinations"],
                             "smtpResponse": "250 2.0.0 OK", "processingTimeMillis": 500}
    return event
