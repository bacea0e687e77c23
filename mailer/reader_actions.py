"""The operator's actions on one reader at the console: unsuppress, unsubscribe, forget.

A use case over the reader's record (:mod:`mailer.reads.reader_records`): which actions the
console offers is the workflow's answer (:mod:`mailer.subscription_states`) for the reader's
status, narrowed by the console's own rules (only a reader suppressed for soft bounces is
unsuppressed here; a complaint is lifted from the command line only). Every action writes
through the store's one status write (or its erasure) and carries the operator's reason into
the reader's history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import Session

from mailer.domain import SubscriberStatus
from mailer.errors import SubscriberError
from mailer.reads.reader_records import ReaderRecord, reader_record
from mailer.store import subscribers
from mailer.store.models import Subscriber
from mailer.subscription_states import ERASED, Event, allows, require

log = logging.getLogger("mailer.admin")

ADMIN_SOURCE = "admin"  # one of suppression.OPERATOR_SOURCES
MAX_REASON_LENGTH = 500
MIN_REASON_LENGTH = 3
# each action and the workflow's event it is
ACTION_EVENTS = {"unsuppress": Event.RESTORE, "unsubscribe": Event.UNSUBSCRIBE,
                 "forget": Event.FORGET}
ACTIONS = tuple(ACTION_EVENTS)


@dataclass(frozen=True)
class ActionOutcome:
    action: str
    subscriber_id: int
    message: str


def allowed_actions(record: ReaderRecord) -> list[str]:
    """What the console offers for this reader. A complaint is never lifted here (CLI only)."""
    return [action for action in ACTIONS if _offered(record, action)]


def _offered(record: ReaderRecord, action: str) -> bool:
    if action == "unsuppress" and not record.soft_bounced:
        return False  # the console lifts soft bounces only (perform_action says so too)
    subscriber = record.subscriber
    return allows(subscriber.status, _target_status(subscriber, action), ACTION_EVENTS[action],
                  source=ADMIN_SOURCE)


def clean_reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if len(text) < MIN_REASON_LENGTH:
        raise SubscriberError("give a reason (a few words) for the record")
    if len(text) > MAX_REASON_LENGTH:
        raise SubscriberError(f"the reason is too long (at most {MAX_REASON_LENGTH} characters)")
    return text


def perform_action(session: Session, subscriber_id: int, action: str, *, reason: str,
                   operator: str, secret: str) -> ActionOutcome:
    """Carry out one operator action, or raise SubscriberError and change nothing."""
    if action not in ACTIONS:
        raise SubscriberError(f"unknown action {action!r}")
    reason = clean_reason(reason)
    record = reader_record(session, subscriber_id)
    if record is None:
        raise SubscriberError("there is no such reader (forgotten, or never there)")
    subscriber = record.subscriber
    if action == "unsuppress" and not record.soft_bounced:
        raise SubscriberError(_refusal(record, action))
    require(subscriber.status, _target_status(subscriber, action), ACTION_EVENTS[action],
            source=ADMIN_SOURCE, refusal=_refusal(record, action))
    detail = {"reason": reason, "operator": operator, "action": action}
    if action == "forget":
        log.info("operator %s forgot reader #%s: %s", operator, subscriber.id, reason)
        subscribers.forget_subscriber(session, subscriber.email, secret=secret)
        return ActionOutcome(action, subscriber_id, "Forgotten: only a keyed hash of the "
                                                    "address remains, so it is never re-added.")
    target = _target_status(subscriber, action)
    assert target is not ERASED
    subscribers.change_status(session, subscriber, target, event=ACTION_EVENTS[action],
                              source=ADMIN_SOURCE, detail=detail)
    log.info("operator %s: reader #%s %s (%s)", operator, subscriber.id, action, reason)
    return ActionOutcome(action, subscriber_id, f"The reader is now {target.value}.")


def _target_status(subscriber: Subscriber, action: str) -> SubscriberStatus | None:
    if action == "forget":
        return ERASED
    if action == "unsubscribe":
        return SubscriberStatus.UNSUBSCRIBED
    # back to where they were before the bounces: active if they had confirmed
    return SubscriberStatus.ACTIVE if subscriber.confirmed_at else SubscriberStatus.PENDING


def _refusal(record: ReaderRecord, action: str) -> str:
    status = str(record.subscriber.status)
    if status == SubscriberStatus.COMPLAINED.value:
        return "a complaint can only be lifted from the command line"
    if action == "unsuppress":
        return ("only a reader suppressed for soft (transient) bounces can be unsuppressed "
                f"here; this one is {status}")
    return f"this reader is {status}: nothing to unsubscribe"
