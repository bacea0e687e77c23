"""A reader moves their subscription to a new address (issue 26, "Change my address").

The change waits on the reader's one row (``new_email``, ``new_email_nonce``) until the link
mailed to the new address is clicked; until then the old address keeps getting the newsletter.
Confirming replaces the address on the same row, so the history, the consent record and the
deliveries stay under one reader, and writes a history entry (source ``reader page``).

Asking does the same work whatever the new address is (:func:`request_change`); whether it is
already on the list (any status, forgotten) is decided afterwards, outside the answer
(:func:`mail_for_request`), and such an address never gets a link that could merge two rows.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import AddressChangeRefused, TokenInvalid, TokenUsed
from mailer.store.forgotten import forget_keys, forgotten_hash
from mailer.store.models import Subscriber, SubscriberChange, rows_changed, stored_id
from mailer.store.subscribers import _json_or_none, get_by_email, normalise_address, unforget
from mailer.subscription_states import Event, allows
from mailer.tokens import make_address_token, read_address_token

SOURCE = "reader page"  # the history entry's source, as the operator console shows it


class MailKind(StrEnum):
    CONFIRM = "confirm"  # the new address is free: the link that makes the change
    TAKEN = "taken"  # a reader of the list has it: a notice, no link
    NONE = "none"  # forgotten, unsubscribed or suppressed: nothing is mailed there


def _may_change_address(status: SubscriberStatus | str) -> bool:
    """Only a reader who gets the newsletter moves it (mailer.subscription_states)."""
    return allows(status, status, Event.CHANGE_ADDRESS, source=SOURCE)


# The same rule for the statement that makes the change: the statuses it may find the row in.
_CHANGING_STATUSES = [status.value for status in SubscriberStatus if _may_change_address(status)]


@dataclass(frozen=True)
class ChangeRequest:
    subscriber_id: int
    old: str
    new: str
    token: str


def request_change(session: Session, subscriber: Subscriber, raw_new: str, *,
                   secret: str) -> ChangeRequest:
    """Record the pending change on the reader's row and sign its link.

    The same work for a free and a taken address: nothing here looks the new address up.
    Raises InvalidAddress, or AddressChangeRefused for the reader's own address or a reader
    who gets no newsletter.
    """
    new = normalise_address(raw_new)
    if new.casefold() == subscriber.email.casefold():
        raise AddressChangeRefused(f"{new} is already the address of this subscription.")
    if not _may_change_address(subscriber.status):
        raise AddressChangeRefused(
            "Only a subscription that receives the newsletter can change its address.")
    nonce = secrets.token_urlsafe(18)
    subscriber.new_email = new
    subscriber.new_email_nonce = nonce  # an earlier request's link stops working
    subscriber.new_email_requested_at = utcnow()
    session.add(subscriber)
    session.commit()
    assert subscriber.id is not None
    return ChangeRequest(subscriber.id, subscriber.email, new,
                         make_address_token(secret, subscriber.id, subscriber.email, new, nonce))


def mail_for_request(session: Session, new: str, *, secret: str) -> tuple[MailKind, str]:
    """What the new address gets, and the address as the list spells it: decided after the
    answer, so its time tells nothing."""
    holder = get_by_email(session, new)
    # looked up whatever the first answer: both cases cost the same
    forgotten = forgotten_hash(session, new, forget_keys(session, secret)) is not None
    if holder is None:
        return (MailKind.NONE if forgotten else MailKind.CONFIRM), new
    if holder.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
        return MailKind.TAKEN, holder.email
    # unsubscribed, bounced, complained: they asked for (or get) no mail
    return MailKind.NONE, holder.email


@dataclass(frozen=True)
class ChangeLink:
    subscriber: Subscriber
    old: str
    new: str
    nonce: str


def check_link(session: Session, token: str, *, secret: str, max_age: int) -> ChangeLink:
    """The change a link would make; changes nothing (mail scanners GET). Used, forged,
    expired, replaced, or for a reader whose address or status has changed since: raises."""
    subscriber_id, old, new, nonce = read_address_token(secret, token, max_age)
    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None:
        raise TokenInvalid("This address change link is for a subscription that no longer "
                           "exists; nothing was changed.")
    if subscriber.email.casefold() == new.casefold() and subscriber.new_email_nonce is None:
        raise TokenUsed("This address change link was already used: issues go to "
                        f"{new} already.")
    if subscriber.email.casefold() != old.casefold():
        raise TokenInvalid("This subscription's address has changed since this link was "
                           "mailed; nothing was changed.")
    if not _may_change_address(subscriber.status):
        raise TokenInvalid("This subscription no longer receives the newsletter, so its "
                           "address cannot be changed; nothing was changed.")
    current = subscriber.new_email_nonce
    if current is None or not hmac.compare_digest(current, nonce):
        raise TokenInvalid("This address change link was replaced by a newer one or "
                           "withdrawn; nothing was changed.")
    return ChangeLink(subscriber, old, new, nonce)


def confirm_change(session: Session, token: str, *, secret: str, max_age: int,
                   ip: str | None = None) -> ChangeLink:
    """Spend the link: the new address replaces the old on the same row, in one statement
    that also claims the nonce, so two clicks (or two readers moving to one address) cannot
    both succeed; the address's unique index refuses a second row with it."""
    link = check_link(session, token, secret=secret, max_age=max_age)
    if get_by_email(session, link.new) is not None:
        raise AddressChangeRefused(f"{link.new} is already on our list, so this subscription "
                                   "cannot move to it; nothing was changed.")
    subscriber = link.subscriber
    now = utcnow()
    try:
        claimed = rows_changed(session.execute(
            update(Subscriber)
            .where(col(Subscriber.id) == subscriber.id, col(Subscriber.new_email_nonce) == link.nonce,
                   col(Subscriber.status).in_(_CHANGING_STATUSES),
                   func.lower(col(Subscriber.email)) == link.old.lower())
            .values(email=link.new, new_email=None, new_email_nonce=None,
                    new_email_requested_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ))
    except IntegrityError:  # the address arrived on the list between the check and now
        session.rollback()
        raise AddressChangeRefused(f"{link.new} is already on our list, so this subscription "
                                   "cannot move to it; nothing was changed.") from None
    if claimed != 1:
        session.rollback()
        raise TokenUsed("This address change link was already used; nothing more changed.")
    session.add(SubscriberChange(
        subscriber_id=stored_id(subscriber.id), at=now, from_status=subscriber.status,
        to_status=subscriber.status, source=SOURCE,
        detail=_json_or_none({"address_changed_from": link.old, "to": link.new, "ip": ip})))
    # the new mailbox's owner clicked: as a sign-up's confirmation, their wish lifts an erasure
    unforget(session, link.new, secret=secret)
    session.commit()
    session.refresh(subscriber)
    return ChangeLink(subscriber, link.old, link.new, link.nonce)
