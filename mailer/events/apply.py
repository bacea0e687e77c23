"""Apply SES events to the store: the event log, the ledger rows and the subscriber policy.

Every intake (the SNS web hook, ``mailer events poll``, ``mailer events replay``) ends here, so
the rules hold whatever route an event took:

- each event is stored once (``event_key``); the same event again changes nothing;
- events map to their ledger row by SES message id, then by our ``delivery`` tag, then by the
  ``X-Mailer-Delivery`` header; events for messages we do not know are stored all the same;
- a permanent bounce suppresses the address (``bounced``) at once; transient bounces suppress it
  when ``MAILER_TRANSIENT_BOUNCE_LIMIT`` of its last ``MAILER_TRANSIENT_BOUNCE_WINDOW`` sends
  bounced transiently; undetermined bounces are recorded only;
- a complaint suppresses the address (``complained``) except feedback type ``not-spam``;
- Delivery / DeliveryDelay / Open / Click stamp the row; Reject and Rendering Failure fail it;
  any event proving the message left SES settles a row left ``unknown`` by a crash as ``sent``,
  and one re-queued by the settle rule (issue 21) before its re-send.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlmodel import Session, col, select, update

from mailer.config import Settings
from mailer.domain import (
    BounceType,
    DeliveryEvent,
    DeliveryStatus,
    EventKind,
    SubscriberStatus,
    address_key,
)
from mailer.errors import MailerError, StoreError
from mailer.events.ses import event_key, parse_notification, recipient_parts
from mailer.events.sns import NOTIFICATION, SnsEnvelope, envelope_from_fields, is_envelope
from mailer.store import subscribers
from mailer.store.db import session as open_session
from mailer.store.ledger import SETTLE_REQUEUED
from mailer.store.models import Delivery, DeliveryEventRecord, SnsMessage, Subscriber
from mailer.subscription_states import Event as Move  # the workflow's events, not SES's
from mailer.suppression import SES_BOUNCE, SES_COMPLAINT, SES_SUBSCRIPTION
from mailer.wire import is_simulator

log = logging.getLogger("mailer.events")

# Events that prove SES accepted the message and sent it on its way.
PROOF_OF_SENDING = frozenset({
    EventKind.SEND, EventKind.DELIVERY, EventKind.BOUNCE, EventKind.COMPLAINT,
    EventKind.DELIVERY_DELAY, EventKind.OPEN, EventKind.CLICK,
})
NOT_SPAM = "not-spam"
CONFLICT_ATTEMPTS = 3


@dataclass
class ApplyResult:
    """What one batch of events did, for the CLI and the web hook's answer."""

    recorded: Counter = field(default_factory=Counter)  # new events per kind
    duplicates: int = 0
    unmatched: int = 0  # events for messages no ledger row knows
    suppressed: list[str] = field(default_factory=list)  # "address → status"
    replayed_messages: int = 0  # whole SNS messages seen before
    ignored_messages: int = 0  # SNS confirmations and set-up notices carry no event

    def merge(self, other: ApplyResult) -> None:
        self.recorded.update(other.recorded)
        self.duplicates += other.duplicates
        self.unmatched += other.unmatched
        self.suppressed.extend(other.suppressed)
        self.replayed_messages += other.replayed_messages
        self.ignored_messages += other.ignored_messages

    @property
    def total(self) -> int:
        return sum(self.recorded.values())


# -- intakes --------------------------------------------------------------------------------------


def ingest_sns_message(engine: Engine, envelope: SnsEnvelope, settings: Settings) -> ApplyResult:
    """Apply one SNS message (already verified, or trusted) once: a replay changes nothing."""
    events = parse_notification(envelope.message) if envelope.type == NOTIFICATION else []

    def work(db: Session) -> ApplyResult:
        if db.get(SnsMessage, envelope.message_id[:128]) is not None:
            return ApplyResult(replayed_messages=1)
        # Claim the message id before anything else: a concurrent delivery of the same message
        # waits here for ours to commit, fails on the key, and its retry sees a replay.
        db.add(SnsMessage(message_id=envelope.message_id[:128], message_type=envelope.type,
                          topic_arn=envelope.topic_arn[:256]))
        db.flush()
        result = apply_events(db, events, settings)
        if not events:
            result.ignored_messages += 1
        return result

    return run_in_transaction(engine, work)


def ingest_events(engine: Engine, events: list[DeliveryEvent], settings: Settings) -> ApplyResult:
    """Apply already parsed events in one transaction."""
    return run_in_transaction(engine, lambda db: apply_events(db, events, settings))


def ingest_document(engine: Engine, document: dict, settings: Settings) -> ApplyResult:
    """A notification from a trusted source (an operator's file, their SQS queue): a bare SES
    payload or one inside its SNS envelope. No signature is checked here."""
    if is_envelope(document):
        envelope = envelope_from_unsigned(document)
        if envelope.type != NOTIFICATION:
            return ApplyResult(ignored_messages=1)
        return ingest_sns_message(engine, envelope, settings)
    events = parse_notification(document)
    if not events:
        return ApplyResult(ignored_messages=1)
    return ingest_events(engine, events, settings)


def envelope_from_unsigned(document: dict) -> SnsEnvelope:
    """An envelope from SQS or a saved file: signature fields may be missing, and are unused."""
    filled = {"Timestamp": "", "SignatureVersion": "", "Signature": "", "SigningCertURL": "",
              "TopicArn": "", "SubscribeURL": "", "Token": "", **document}
    if not isinstance(filled.get("MessageId"), str):
        raise MailerError("SNS message without a MessageId")
    return envelope_from_fields(filled)


def run_in_transaction(engine: Engine, work):
    """Run ``work`` in one transaction. A unique-key clash means a concurrent delivery of the
    same message won the race: run again, and the second pass sees its rows as duplicates."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            with open_session(engine) as db:
                result = work(db)
                db.commit()
                return result
        except IntegrityError:
            if attempt == CONFLICT_ATTEMPTS - 1:
                raise
        except (OperationalError, InterfaceError) as error:
            raise StoreError(f"the database is unreachable: {error.orig}") from None
    raise AssertionError("unreachable")


# -- the rules ----------------------------------------------------------------------------------


def apply_events(db: Session, events: list[DeliveryEvent], settings: Settings) -> ApplyResult:
    """Record each new event, update its ledger row and apply the subscriber policy."""
    result = ApplyResult()
    parts: dict[int, Callable[[str], dict]] = {}  # per payload: its events share one dict
    for event in events:
        key = event_key(event)
        if db.exec(select(DeliveryEventRecord.id).where(DeliveryEventRecord.event_key == key)).first():
            result.duplicates += 1
            continue
        delivery = find_delivery(db, event)
        if id(event.raw) not in parts:
            parts[id(event.raw)] = recipient_parts(event.raw)
        part = parts[id(event.raw)]
        db.add(event_record(event, key, delivery, part(event.recipient)))
        if delivery is None:
            result.unmatched += 1
        else:
            settle_requeued(db, delivery, event)
            update_delivery(delivery, event)
            db.add(delivery)
        db.flush()  # the transient-bounce count below must see this row's new bounce type
        result.recorded[event.kind.value] += 1
        change = apply_policy(db, event, delivery, settings)
        if change:
            result.suppressed.append(change)
    return result


def event_record(event: DeliveryEvent, key: str, delivery: Delivery | None,
                 raw: dict) -> DeliveryEventRecord:
    """The row for one event; ``raw`` is the recipient's part of the payload."""
    return DeliveryEventRecord(
        event_key=key,
        kind=event.kind.value,
        recipient=event.recipient[:320],
        occurred_at=event.occurred_at,
        provider_message_id=(event.provider_message_id or None) and event.provider_message_id[:255],
        delivery_id=delivery.id if delivery else None,
        bounce_type=event.bounce_type.value if event.bounce_type else None,
        bounce_subtype=(event.bounce_subtype or None) and str(event.bounce_subtype)[:64],
        diagnostic=event.diagnostic,
        raw=json.dumps(raw, ensure_ascii=False, separators=(",", ":")),
    )


def same_address(a: str, b: str) -> bool:
    return address_key(a) == address_key(b)


def find_delivery(db: Session, event: DeliveryEvent) -> Delivery | None:
    """The ledger row: by SES message id, else by our tag / header (checked against the
    recipient and campaign, so a stray id never lands on someone else's row)."""
    if event.provider_message_id:
        row = db.exec(
            select(Delivery).where(Delivery.provider_message_id == event.provider_message_id)
        ).first()
        if row is not None:
            return row
    if event.delivery_id is None:
        return None
    row = db.get(Delivery, event.delivery_id)
    if row is None or not same_address(row.email, event.recipient):
        return None
    if event.campaign_id is not None and row.campaign_id != event.campaign_id:
        return None
    if not row.provider_message_id and event.provider_message_id:
        row.provider_message_id = event.provider_message_id[:255]  # a crash lost it
    return row


def settle_requeued(db: Session, row: Delivery, event: DeliveryEvent) -> None:
    """A late event for a row the settle rule re-queued, before its re-send: SES did take the
    first copy, so the row is sent and the re-send (which needs ``queued``) never happens.
    Conditional, so a re-send already under way keeps its own outcome."""
    if (event.kind not in PROOF_OF_SENDING or row.status != DeliveryStatus.QUEUED
            or row.error != SETTLE_REQUEUED):
        return
    db.exec(update(Delivery)
            .where(col(Delivery.id) == row.id, col(Delivery.status) == DeliveryStatus.QUEUED.value)
            .values(status=DeliveryStatus.SENT.value, sent_at=event.occurred_at,
                    error="sent: its SES event arrived after it was queued to be re-sent"))


def update_delivery(row: Delivery, event: DeliveryEvent) -> None:
    at = event.occurred_at
    if event.kind in PROOF_OF_SENDING and row.status == DeliveryStatus.UNKNOWN:
        row.status = DeliveryStatus.SENT
        row.sent_at = row.sent_at or at
    if event.kind is EventKind.DELIVERY:
        row.delivered_at = row.delivered_at or at
    elif event.kind is EventKind.BOUNCE:
        record_bounce(row, event)
    elif event.kind is EventKind.COMPLAINT and not is_not_spam(event):
        row.complained_at = row.complained_at or at
    elif event.kind is EventKind.REJECT:
        row.status = DeliveryStatus.FAILED
        row.error = f"rejected by SES: {event.diagnostic or 'no reason given'}"
    elif event.kind is EventKind.RENDERING_FAILURE:
        row.status = DeliveryStatus.FAILED
        row.error = f"SES could not render the message: {event.diagnostic or 'no reason given'}"
    elif event.kind is EventKind.DELIVERY_DELAY:
        row.delayed_at = row.delayed_at or at
    elif event.kind is EventKind.OPEN:
        row.opened_at = row.opened_at or at
    elif event.kind is EventKind.CLICK:
        row.clicked_at = row.clicked_at or at


def record_bounce(row: Delivery, event: DeliveryEvent) -> None:
    if event.bounce_type not in (BounceType.PERMANENT, BounceType.TRANSIENT):
        return  # undetermined: the event is on record, the row says nothing it cannot know
    if row.bounce_type != BounceType.PERMANENT.value:  # a later soft bounce never softens a hard one
        row.bounce_type = event.bounce_type.value
    row.bounced_at = row.bounced_at or event.occurred_at


def is_not_spam(event: DeliveryEvent) -> bool:
    return (event.diagnostic or "").strip().lower() == NOT_SPAM


def subscriber_for(db: Session, event: DeliveryEvent, delivery: Delivery | None) -> Subscriber | None:
    if delivery is not None:
        return db.get(Subscriber, delivery.subscriber_id)
    try:
        return subscribers.get_by_email(db, event.recipient)
    except MailerError:
        return None  # SES reported an address we could never have stored


def apply_policy(db: Session, event: DeliveryEvent, delivery: Delivery | None,
                 settings: Settings) -> str | None:
    """Change the subscriber's status if the event calls for it; say what changed."""
    if is_simulator(event.recipient):  # SES's mailbox simulator (`mailer doctor --live`)
        return None
    target = policy_target(db, event, delivery, settings)
    if target is None:
        return None
    status, cause, source, reason = target
    subscriber = subscriber_for(db, event, delivery)
    if subscriber is None:
        return None
    detail = {"reason": reason, "message_id": event.provider_message_id,
              "delivery": delivery.id if delivery else None,
              "campaign": delivery.campaign_id if delivery else None}
    # mailer.subscription_states decides: evidence from SES only ever tightens a suppression.
    if not subscribers.change_status(db, subscriber, status, event=cause, source=source,
                                     detail=detail, commit=False):
        return None
    log.info("%s is now %s (%s)", subscriber.email, status.value, reason)
    return f"{subscriber.email} → {status.value}"


def policy_target(db: Session, event: DeliveryEvent, delivery: Delivery | None,
                  settings: Settings) -> tuple[SubscriberStatus, Move, str, str] | None:
    """The status an SES event calls for, the workflow's event that takes the reader there,
    the source it is recorded under and the reason; None: the event changes no status."""
    if event.kind is EventKind.BOUNCE and event.bounce_type is BounceType.PERMANENT:
        # OnAccountSuppressionList included: SES will not deliver there anyway
        return SubscriberStatus.BOUNCED, Move.BOUNCE, SES_BOUNCE, bounce_reason(event)
    if event.kind is EventKind.BOUNCE and event.bounce_type is BounceType.TRANSIENT:
        if delivery is None:
            return None
        count = recent_transient_bounces(db, delivery.subscriber_id,
                                         settings.transient_bounce_window)
        if count >= settings.transient_bounce_limit:
            return (SubscriberStatus.BOUNCED, Move.BOUNCE, SES_BOUNCE,
                    f"{count} of the last {settings.transient_bounce_window} sends bounced "
                    f"(transient: {bounce_reason(event)})")
        return None
    if event.kind is EventKind.COMPLAINT and not is_not_spam(event):
        return (SubscriberStatus.COMPLAINED, Move.COMPLAINT, SES_COMPLAINT,
                f"complaint ({event.diagnostic or 'no feedback type'})")
    if event.kind is EventKind.SUBSCRIPTION and event.diagnostic == "unsubscribeAll":
        return (SubscriberStatus.UNSUBSCRIBED, Move.UNSUBSCRIBE, SES_SUBSCRIPTION,
                "unsubscribed through SES")
    return None


def bounce_reason(event: DeliveryEvent) -> str:
    parts = [event.bounce_type.value if event.bounce_type else "bounce"]
    if event.bounce_subtype:
        parts.append(str(event.bounce_subtype))
    if event.diagnostic:
        parts.append(event.diagnostic)
    return "; ".join(parts)[:500]


def recent_transient_bounces(db: Session, subscriber_id: int, window: int) -> int:
    """Transient bounces among the subscriber's last ``window`` messages that left us."""
    recent = db.exec(
        select(Delivery.bounce_type)
        .where(Delivery.subscriber_id == subscriber_id)
        .where(col(Delivery.status).in_([DeliveryStatus.SENT.value, DeliveryStatus.UNKNOWN.value]))
        .order_by(col(Delivery.id).desc())
        .limit(window)
    ).all()
    return sum(1 for bounce_type in recent if bounce_type == BounceType.TRANSIENT.value)
