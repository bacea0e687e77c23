"""`mailer doctor --live`: prove the feedback loop with SES's mailbox simulator.

One message goes to each simulator address through the configured configuration set; SES then
produces real Delivery, Bounce and Complaint events for them without touching the account's
reputation. This module sends and explains; waiting for the events in mailer's database is the
command's part (transports never touch the database).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailer.config import Settings
from mailer.domain import EventKind, OutgoingEmail
from mailer.wire import WEBHOOK_PATH

if TYPE_CHECKING:  # the web hook imports is_simulator: keep boto3 out of its imports
    from mailer.transports.ses_doctor import Check

SIMULATOR_DOMAIN = "simulator.amazonses.com"

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


def is_simulator(address: str | None) -> bool:
    """SES's mailbox simulator: its events are tests, never a reader's reputation."""
    return bool(address) and address.strip().lower().endswith("@" + SIMULATOR_DOMAIN)


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


def send_probes(transport, settings: Settings) -> list[Probe]:
    """One message to each simulator mailbox; a refusal raises the transport's error."""
    probes = []
    for mailbox, expected in SIMULATOR_EVENTS.items():
        address = simulator_address(mailbox)
        message_id = transport.send(simulator_message(settings, address))
        probes.append(Probe(address, message_id, expected))
    return probes


def likeliest_cause(checks: list[Check]) -> str:
    """The first failing check on the event path, in the order events travel."""
    failing = {check.name: check.message for check in checks if check.status == "FAIL"}
    if "AWS access" in failing:
        return f"cannot read the SES set-up to tell: {failing['AWS access']}"
    for name, cause in _CAUSES:
        if name in failing:
            return f"{cause} ({failing[name]})"
    return NO_VISIBLE_CAUSE
