"""The opt-in workflow's steps, in one database session each: request a subscription (or ask
again), confirm it, unsubscribe, and the operator's add and remove.

Each step asks :mod:`mailer.subscription_states` whether its event applies to the reader's
state and leaves the rows to :mod:`mailer.store.subscribers`. Confirmation links are signed,
single-use and expiring (mailer.tokens, a nonce on the row); unsubscribe links are signed.
Each public function commits its own unit of work before it returns. The engine-level use cases
the web app calls are :mod:`mailer.subscriptions`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import SubscriberError, TokenInvalid, TokenUsed
from mailer.store import signups
from mailer.store import subscribers as store
from mailer.store.forgotten import forget_keys, forgotten_hash, secret_or_configured
from mailer.store.models import Subscriber
from mailer.subscription_states import Event, allows
from mailer.tokens import make_confirm_token, read_confirm_token, read_unsubscribe_token

# -- request -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscribeOutcome:
    subscriber: Subscriber | None  # None: a forgotten address, nothing stored
    confirm_token: str | None  # set only when a confirmation mail must be sent now


def request_subscription(session: Session, raw_email: str, *, secret: str, source: str = "web",
                         ip: str | None = None, min_interval: int = 3600) -> SubscribeOutcome:
    """Someone asked to subscribe ``raw_email``: decide whether a confirmation mail goes out.

    The caller must answer the same way whatever happens here, so nobody can learn from the
    answer who reads the newsletter.
    """
    email = store.normalise_address(raw_email)
    subscriber = store.get_by_email(session, email)
    if subscriber is None and store.is_forgotten(session, email, secret=secret):
        # they asked to be forgotten: a sign-up (by anyone) stores and mails nothing; the
        # operator can add them back with `subscribers add --allow-forgotten`
        return SubscribeOutcome(None, None)
    if subscriber is None:
        try:
            return _new_pending(session, email, secret=secret, source=source, ip=ip)
        except IntegrityError:  # the same address arrived twice at once: the other one won
            session.rollback()
            subscriber = store.get_by_email(session, email)
            assert subscriber is not None
    return _repeat_request(session, subscriber, secret=secret, source=source, ip=ip,
                           min_interval=min_interval)


def _new_pending(session: Session, email: str, *, secret: str, source: str,
                 ip: str | None) -> SubscribeOutcome:
    now = utcnow()
    subscriber = store.create_subscriber(
        session, email, SubscriberStatus.PENDING, source=source, at=now, detail={"ip": ip},
        confirm_nonce=store.new_nonce(), confirm_sent_at=now, signup_ip=ip)
    session.commit()
    return SubscribeOutcome(subscriber, _confirm_token(secret, subscriber))


def _repeat_request(session: Session, subscriber: Subscriber, *, secret: str, source: str,
                    ip: str | None, min_interval: int) -> SubscribeOutcome:
    if not allows(subscriber.status, SubscriberStatus.PENDING, Event.REQUEST, source=source):
        return SubscribeOutcome(subscriber, None)  # active, or suppressed: no mail, no change
    if _mailed_recently(subscriber, min_interval):
        return SubscribeOutcome(subscriber, None)
    store.change_status(session, subscriber, SubscriberStatus.PENDING, event=Event.REQUEST,
                        source=source, detail={"ip": ip, "resubscribe": True}, commit=False)
    store.renew_confirmation(session, subscriber, source=source, ip=ip)
    session.commit()
    return SubscribeOutcome(subscriber, _confirm_token(secret, subscriber))


def _mailed_recently(subscriber: Subscriber, min_interval: int) -> bool:
    sent = subscriber.confirm_sent_at
    return sent is not None and (utcnow() - sent).total_seconds() < min_interval


def _confirm_token(secret: str, subscriber: Subscriber) -> str:
    assert subscriber.id is not None and subscriber.confirm_nonce is not None
    return make_confirm_token(secret, subscriber.id, subscriber.confirm_nonce)


def handle_signup(session: Session, request_id: int, *, secret: str,
                  min_interval: int) -> SubscribeOutcome | None:
    """Do what a queued sign-up (mailer.store.signups) asked for; None when it was handled
    already. The claim and the request commit together: a crash in between leaves it queued."""
    claimed = signups.claim_request(session, request_id)
    if claimed is None:
        return None
    email, ip = claimed
    outcome = request_subscription(session, email, secret=secret, source="web", ip=ip,
                                   min_interval=min_interval)
    session.commit()
    return outcome


# -- confirm -----------------------------------------------------------------------------------


def check_confirm_token(session: Session, token: str, *, secret: str, max_age: int) -> Subscriber:
    """The pending subscriber this confirm link is for; changes nothing (mail scanners GET)."""
    subscriber, _nonce = _confirmable(session, token, secret=secret, max_age=max_age)
    return subscriber


def _confirmable(session: Session, token: str, *, secret: str,
                 max_age: int) -> tuple[Subscriber, str]:
    subscriber_id, nonce = read_confirm_token(secret, token, max_age)
    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None:
        raise TokenInvalid("this confirmation link is not valid")
    current = subscriber.confirm_nonce
    if current is None or not allows(subscriber.status, SubscriberStatus.ACTIVE, Event.CONFIRM,
                                     source=store.CONFIRM_SOURCE):
        raise TokenUsed("this confirmation link has already been used")
    if not hmac.compare_digest(current, nonce):
        raise TokenInvalid("this confirmation link was replaced by a newer one; "
                           "please use the link in the latest mail")
    return subscriber, nonce


def confirm_subscription(session: Session, token: str, *, secret: str, max_age: int,
                         ip: str | None = None) -> Subscriber:
    """Spend a confirm link: the subscriber becomes active. A second use raises TokenUsed."""
    subscriber, nonce = _confirmable(session, token, secret=secret, max_age=max_age)
    if not store.claim_confirm_nonce(session, subscriber, nonce, ip=ip):
        session.rollback()
        raise TokenUsed("this confirmation link has already been used")
    store.change_status(session, subscriber, SubscriberStatus.ACTIVE, event=Event.CONFIRM,
                        source=store.CONFIRM_SOURCE,
                        detail=store.confirmation_detail(subscriber, nonce, ip), commit=False)
    # They confirmed anew: the erasure no longer stands in the way of their own wish.
    store.unforget(session, subscriber.email, secret=secret)
    session.commit()
    return subscriber


# -- unsubscribe -------------------------------------------------------------------------------


def unsubscribe_with_token(session: Session, token: str, *, secret: str,
                           source: str = "web") -> Subscriber:
    """Unsubscribe the subscriber an unsubscribe link names. Idempotent."""
    subscriber_id = read_unsubscribe_token(secret, token)
    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None:
        raise TokenInvalid("this address is no longer on the list")
    _unsubscribe(session, subscriber, source=source)
    return subscriber


def _unsubscribe(session: Session, subscriber: Subscriber, *, source: str) -> None:
    # an unsubscribed, bounced or complained reader stays as they are
    if allows(subscriber.status, SubscriberStatus.UNSUBSCRIBED, Event.UNSUBSCRIBE, source=source):
        store.change_status(session, subscriber, SubscriberStatus.UNSUBSCRIBED,
                            event=Event.UNSUBSCRIBE, source=source)


# -- operator commands -------------------------------------------------------------------------


class AddOutcome(StrEnum):
    """What ``add_subscriber`` did, for the operator to be told truthfully."""

    ADDED = "added"
    CONFIRMED = "confirmed"  # ``confirmed`` and the address was pending: now active
    EXISTING = "existing"  # already there, left as it is


def add_subscriber(session: Session, raw_email: str, *, confirmed: bool = False,
                   source: str = "cli", secret: str | None = None,
                   allow_forgotten: bool = False) -> tuple[Subscriber, AddOutcome]:
    """Add an address by hand; returns (row, what was done). An existing row is left as it is,
    except that ``confirmed`` confirms a pending one (the rule ``import --confirmed`` follows
    too); an unsubscribed, bounced or complained one is never made active here.

    A forgotten address is refused unless ``allow_forgotten`` (the person asked again).
    """
    email = store.normalise_address(raw_email)
    existing = store.get_by_email(session, email)
    if existing is not None:
        if confirmed and allows(existing.status, SubscriberStatus.ACTIVE, Event.CONFIRM,
                                source=source):
            store.change_status(session, existing, SubscriberStatus.ACTIVE, event=Event.CONFIRM,
                                source=source, detail={"confirmed_by": "operator"})
            return existing, AddOutcome.CONFIRMED
        return existing, AddOutcome.EXISTING
    if forgotten_hash(session, email, forget_keys(session, secret_or_configured(secret))) is not None:
        if not allow_forgotten:
            raise SubscriberError(f"{email} was forgotten at their request and is not added "
                                  "again (pass --allow-forgotten if they asked to return)")
        store.unforget(session, email, secret=secret_or_configured(secret))
    now = utcnow()
    if confirmed:
        subscriber = store.create_subscriber(session, email, SubscriberStatus.ACTIVE,
                                             source=source, at=now, confirmed_at=now,
                                             detail={"confirmed_by": "operator"})
    else:
        subscriber = store.create_subscriber(session, email, SubscriberStatus.PENDING,
                                             source=source, at=now)
    session.commit()
    return subscriber, AddOutcome.ADDED


def remove_subscriber(session: Session, raw_email: str, *, source: str = "cli") -> Subscriber:
    """Unsubscribe an address (a bounced or complained one stays suppressed as it is)."""
    subscriber = store.require_subscriber(session, raw_email)
    _unsubscribe(session, subscriber, source=source)
    return subscriber
