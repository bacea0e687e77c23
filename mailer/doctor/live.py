"""`mailer doctor --live`: prove the feedback loop with SES's mailbox simulator.

One message goes to each simulator address through the configured configuration set; SES then
produces real Delivery, Bounce and Complaint events for them without touching the account's
reputation. This module sends the probes and watches mailer's database for their events (through
the web hook, the SQS poller or a replay); the command prints the verdicts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from mailer.config import Settings
from mailer.doctor.checks import Check
from mailer.domain import EventKind, OutgoingEmail
from mailer.store.db import session
from mailer.store.models import DeliveryEventRecord
from mailer.transports import get_transport
from mailer.wire import SIMULATOR_DOMAIN, WEBHOOK_PATH

POLL_SECONDS = 1.0

# simulator mailbox → the events SES sends back for it
SIMULATOR_EVENTS: dict[str, tuple[EventKind, ...]] = {
    "success": (EventKind.DELIVERY,),
    "bounce": (EventKind.BOUNCE,),
    "complaint": (EventKind.DELIVERY, EventKind.COMPLAINT),
    "suppressionlist": (EventKind.BOUNCE,),
    "ooto": (EventKind.DELIVERY,),
}

# For each check whose FAIL would stop events reaching us, what to tell the operator.
_CAUSES = (
    ("configuration set", "no configuration set on the messages (MAILER_SES_CONFIGURATION_SET)"),
    ("event destination", "no SNS event destination for these events on the configuration set"),
    ("SNS topic", "the event destination's SNS topic does not exist"),
    ("web hook subscription", "the topic is not subscribed to the web hook, or raw delivery "
                              "is on"),
    ("topic allow-list", "wrong topic ARN: the topic is not on MAILER_SNS_TOPIC_ARNS, so the "
                         "web hook refuses its messages"),
)
NO_VISIBLE_CAUSE = ("SES took the messages and the set-up looks right: is `mailer serve` "
                    f"reachable at MAILER_BASE_URL{WEBHOOK_PATH} (or `mailer events poll` running "
                    "on the queue)?")


def simulator_address(mailbox: str) -> str:
    return f"{mailbox}@{SIMULATOR_DOMAIN}"


@dataclass(frozen=True)
class Probe:
    address: str
    message_id: str
    expected: tuple[EventKind, ...]


def simulator_message(settings: Settings, address: str) -> OutgoingEmail:
    text = ("mailer doctor --live: a test of the SES event path. It goes to SES's mailbox "
            "simulator, never to a person.\n")
    return OutgoingEmail(to=address, sender=settings.from_, subject="mailer doctor --live",
                         html=f"<p>{text}</p>", text=text,
                         tags={"mailer-doctor": "live"})


def send_probes(settings: Settings) -> list[Probe]:
    """One message to each simulator mailbox through the configured transport; a refusal
    raises the transport's error."""
    transport = get_transport(settings, max_connections=2)
    probes = []
    try:
        for mailbox, expected in SIMULATOR_EVENTS.items():
            address = simulator_address(mailbox)
            message_id = transport.send(simulator_message(settings, address))
            probes.append(Probe(address, message_id, expected))
    finally:
        transport.close()
    return probes


def wait_for_events(database: Engine, probes: list[Probe],
                    wait: float) -> dict[tuple[str, str], float]:
    """(message id, kind) → seconds after the send when it was first seen in the database."""
    expected = {(p.message_id, k.value) for p in probes for k in p.expected}
    ids = [p.message_id for p in probes]
    started = time.monotonic()
    arrived: dict[tuple[str, str], float] = {}
    while True:
        elapsed = time.monotonic() - started
        with session(database) as db:
            rows = db.exec(select(DeliveryEventRecord.provider_message_id,
                                  DeliveryEventRecord.kind)
                           .where(col(DeliveryEventRecord.provider_message_id).in_(ids))).all()
        for message_id, kind in rows:
            if message_id is not None:  # the query asked for these ids only
                arrived.setdefault((message_id, kind), elapsed)
        if expected <= arrived.keys() or elapsed >= wait:
            return arrived
        time.sleep(min(POLL_SECONDS, max(0.0, wait - elapsed)))


def verdict(seconds: float | None, late_after: float) -> str:
    if seconds is None:
        return "missing"
    return "ok" if seconds <= late_after else "late"


def likeliest_cause(checks: list[Check]) -> str:
    """The first failing check on the event path, in the order events travel."""
    failing = {check.name: check.message for check in checks if check.status == "FAIL"}
    if "AWS access" in failing:
        return f"cannot read the SES set-up to tell: {failing['AWS access']}"
    for name, cause in _CAUSES:
        if name in failing:
            return f"{cause} ({failing[name]})"
    return NO_VISIBLE_CAUSE
