"""Subscribers: double opt-in, the consent record, operator commands and erasure.

Reading the list (counts per status, listings, one subscriber's history, growth) is
:mod:`mailer.reads.subscriber_figures`.

Address normalisation is :mod:`mailer.addresses`, forgotten-address hashes
:mod:`mailer.store.forgotten`, CSV import and export :mod:`mailer.store.subscriber_files`; their
public names stay importable from here.

Every state change goes through :func:`change_status`, which writes a ``SubscriberChange`` row
(when, from which source, with what detail): that history is the consent and suppression
record. Each public function commits its own unit of work before it returns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from mailer.addresses import (  # re-exported: every caller normalises through this module
    MAX_ADDRESS_LENGTH as MAX_ADDRESS_LENGTH,
    _ascii_domain as _ascii_domain,
    _validated_ascii_address as _validated_ascii_address,
    _validated_by_email_validator as _validated_by_email_validator,
    normalise_address as normalise_address,
)
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import (
    InvalidAddress,
    SubscriberError,
    TokenInvalid,
    TokenUsed,
    UnknownSubscriber,
)
from mailer.store.forgotten import (
    ForgetReport,
    forget_keys,
    forgotten_hash,
    remember_forgotten,
    secret_or_configured,
)
from mailer.store.models import (
    Delivery,
    DeliveryEventRecord,
    ForgottenAddress,
    Subscriber,
    SubscriberChange,
    rows_changed,
    stored_id,
)
from mailer.store.subscriber_files import (  # CSV import and export, under their old names
    IMPORT_CHUNK_ROWS as IMPORT_CHUNK_ROWS,
    ImportReport as ImportReport,
    _iso,
    export_subscribers as export_subscribers,
    import_csv as import_csv,
    spreadsheet_safe as spreadsheet_safe,
)
from mailer.suppression import may_change
from mailer.tokens import read_confirm_token, read_unsubscribe_token


# -- addresses ---------------------------------------------------------------------------------


def _address_or_none(raw: str) -> str | None:
    try:
        return normalise_address(raw)
    except InvalidAddress:
        return None


def get_by_email(session: Session, raw_email: str) -> Subscriber | None:
    """The subscriber with this address in any letter case, or None (also for text that is no
    address at all)."""
    email = _address_or_none(raw_email)
    if email is None:
        return None
    # lower() on both sides: the unique index on lower(email) makes this one row at most.
    return session.execute(select(Subscriber).where(
        func.lower(col(Subscriber.email)) == email.lower())).scalars().first()


def require_subscriber(session: Session, raw_email: str) -> Subscriber:
    """The subscriber with this address; UnknownSubscriber when there is none."""
    email = normalise_address(raw_email)
    subscriber = get_by_email(session, email)
    if subscriber is None:
        raise UnknownSubscriber(f"{email} is not a subscriber")
    return subscriber


def is_forgotten(session: Session, email: str, *, secret: str | None = None) -> bool:
    return forgotten_hash(session, email, forget_keys(session, secret_or_configured(secret))) is not None


# -- state changes -----------------------------------------------------------------------------


def set_pause(session: Session, subscriber: Subscriber, until: datetime | None,
              *, source: str) -> None:
    """The reader pauses until ``until`` (None: the pause ends now), kept in their history."""
    subscriber.paused_until = until
    subscriber.updated_at = utcnow()
    session.add(subscriber)
    session.add(SubscriberChange(
        subscriber_id=stored_id(subscriber.id), from_status=subscriber.status,
        to_status=subscriber.status, source=source, detail=json.dumps({"paused_until": until.isoformat() if until else None})))
    session.commit()


def status_since(session: Session, subscriber: Subscriber) -> datetime:
    """When the subscriber entered its current status (the reader's page shows it)."""
    # Rows older than the history (early versions' imports) fall back to their last change.
    at = session.execute(
        select(col(SubscriberChange.at))
        .where(col(SubscriberChange.subscriber_id) == subscriber.id,
               col(SubscriberChange.to_status) == subscriber.status,
               # a pause or its end is history, not a new status
               or_(col(SubscriberChange.from_status).is_(None),
                   col(SubscriberChange.from_status) != col(SubscriberChange.to_status)))
        .order_by(col(SubscriberChange.at).desc(), col(SubscriberChange.id).desc())
        .limit(1)
    ).scalar_one_or_none()
    return at if at is not None else subscriber.updated_at


def change_status(session: Session, subscriber: Subscriber, to: SubscriberStatus, *,
                  source: str, detail: dict | None = None, commit: bool = True) -> bool:
    """Move ``subscriber`` to ``to`` and record why; False when nothing changed.

    Whether it may is :func:`mailer.suppression.may_change`'s answer for ``source``: only an
    operator lifts a suppression, provider evidence only tightens one.
    ``commit=False`` leaves the change in the caller's transaction (events/apply keeps an SES
    event, its ledger row and the suppression in one).
    """
    changed = _apply_status(session, subscriber, SubscriberStatus(to), source=source,
                            detail=detail)
    if commit:
        session.commit()
    return changed


def _apply_status(session: Session, subscriber: Subscriber, to: SubscriberStatus, *,
                  source: str, detail: dict | None) -> bool:
    current = SubscriberStatus(subscriber.status)
    if not may_change(current, to, source=source):
        return False
    now = utcnow()
    if to is SubscriberStatus.ACTIVE:
        subscriber.confirmed_at = now
    if to is not SubscriberStatus.PENDING:
        subscriber.confirm_nonce = None  # a pending link must not revive a changed subscriber
    if to is not current:  # a change of address asked for before no longer stands (issue 26)
        subscriber.new_email = subscriber.new_email_nonce = None
        subscriber.new_email_requested_at = None
    subscriber.status = to
    subscriber.updated_at = now
    session.add(subscriber)
    session.flush()
    session.add(SubscriberChange(subscriber_id=stored_id(subscriber.id), at=now, from_status=current,
                                 to_status=to, source=source, detail=_json_or_none(detail)))
    return True


def _json_or_none(detail: dict | None) -> str | None:
    return json.dumps(detail, sort_keys=True, default=str) if detail else None


def _record_creation(session: Session, subscriber: Subscriber, *, source: str,
                     detail: dict | None) -> None:
    session.add(SubscriberChange(subscriber_id=stored_id(subscriber.id), at=subscriber.created_at,
                                 from_status=None, to_status=subscriber.status, source=source,
                                 detail=_json_or_none(detail)))


# -- double opt-in -----------------------------------------------------------------------------


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
    email = normalise_address(raw_email)
    subscriber = get_by_email(session, email)
    if subscriber is None and is_forgotten(session, email, secret=secret):
        # they asked to be forgotten: a sign-up (by anyone) stores and mails nothing; the
        # operator can add them back with `subscribers add --allow-forgotten`
        return SubscribeOutcome(None, None)
    if subscriber is None:
        try:
            return _new_pending(session, email, secret=secret, source=source, ip=ip)
        except IntegrityError:  # the same address arrived twice at once: the other one won
            session.rollback()
            subscriber = get_by_email(session, email)
            assert subscriber is not None
    return _repeat_request(session, subscriber, secret=secret, source=source, ip=ip,
                           min_interval=min_interval)


def _new_pending(session: Session, email: str, *, secret: str, source: str,
                 ip: str | None) -> SubscribeOutcome:
    now = utcnow()
    subscriber = Subscriber(email=email, status=SubscriberStatus.PENDING, created_at=now,
                            updated_at=now, confirm_nonce=_new_nonce(), confirm_sent_at=now,
                            source=source, signup_ip=ip)
    session.add(subscriber)
    session.flush()
    _record_creation(session, subscriber, source=source, detail={"ip": ip})
    session.commit()
    return SubscribeOutcome(subscriber, _confirm_token(secret, subscriber))


def _repeat_request(session: Session, subscriber: Subscriber, *, secret: str, source: str,
                    ip: str | None, min_interval: int) -> SubscribeOutcome:
    status = SubscriberStatus(subscriber.status)
    if status not in (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED):
        return SubscribeOutcome(subscriber, None)  # active, or suppressed: no mail, no change
    if _mailed_recently(subscriber, min_interval):
        return SubscribeOutcome(subscriber, None)
    now = utcnow()
    _apply_status(session, subscriber, SubscriberStatus.PENDING, source=source,
                  detail={"ip": ip, "resubscribe": True})
    subscriber.confirm_nonce = _new_nonce()  # earlier links stop working
    subscriber.confirm_sent_at = now
    subscriber.signup_ip = ip
    subscriber.source = source
    subscriber.updated_at = now
    session.add(subscriber)
    session.commit()
    return SubscribeOutcome(subscriber, _confirm_token(secret, subscriber))


def _mailed_recently(subscriber: Subscriber, min_interval: int) -> bool:
    sent = subscriber.confirm_sent_at
    return sent is not None and (utcnow() - sent).total_seconds() < min_interval


def _new_nonce() -> str:
    return secrets.token_urlsafe(18)


def _confirm_token(secret: str, subscriber: Subscriber) -> str:
    from mailer.tokens import make_confirm_token

    assert subscriber.id is not None and subscriber.confirm_nonce is not None
    return make_confirm_token(secret, subscriber.id, subscriber.confirm_nonce)


CONFIRM_SOURCE = "web-confirm"  # the history source of a confirmation through the link


def nonce_fingerprint(nonce: str) -> str:
    # Identifies which confirmation mail was answered without keeping a usable secret.
    return hashlib.sha256(nonce.encode()).hexdigest()[:16]


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
    if current is None or subscriber.status != SubscriberStatus.PENDING:
        raise TokenUsed("this confirmation link has already been used")
    if not hmac.compare_digest(current, nonce):
        raise TokenInvalid("this confirmation link was replaced by a newer one; "
                           "please use the link in the latest mail")
    return subscriber, nonce


def confirm_subscription(session: Session, token: str, *, secret: str, max_age: int,
                         ip: str | None = None) -> Subscriber:
    """Spend a confirm link: the subscriber becomes active. A second use raises TokenUsed."""
    subscriber, nonce = _confirmable(session, token, secret=secret, max_age=max_age)
    # Claim the nonce atomically, so two simultaneous clicks cannot both confirm.
    claimed = rows_changed(session.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == subscriber.id, col(Subscriber.confirm_nonce) == nonce)
        .values(confirm_nonce=None)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        session.rollback()
        raise TokenUsed("this confirmation link has already been used")
    subscriber.confirm_nonce = None
    subscriber.confirm_ip = ip
    detail = {"ip": ip, "signup_ip": subscriber.signup_ip,
              "confirm_sent_at": _iso(subscriber.confirm_sent_at),
              "confirmation": nonce_fingerprint(nonce)}
    _apply_status(session, subscriber, SubscriberStatus.ACTIVE, source=CONFIRM_SOURCE,
                  detail=detail)
    _unforget(session, subscriber.email, secret=secret)
    session.commit()
    return subscriber


def _unforget(session: Session, email: str, *, secret: str) -> None:
    # They confirmed anew: the erasure no longer stands in the way of their own wish.
    hashes = forget_keys(session, secret).hashes(email)
    if hashes:
        session.execute(delete(ForgottenAddress).where(col(ForgottenAddress.address_hash).in_(hashes)))


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
    if subscriber.status in (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE):
        change_status(session, subscriber, SubscriberStatus.UNSUBSCRIBED, source=source)


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
    email = normalise_address(raw_email)
    existing = get_by_email(session, email)
    if existing is not None:
        if confirmed and existing.status == SubscriberStatus.PENDING:
            change_status(session, existing, SubscriberStatus.ACTIVE, source=source,
                          detail={"confirmed_by": "operator"})
            return existing, AddOutcome.CONFIRMED
        return existing, AddOutcome.EXISTING
    if forgotten_hash(session, email, forget_keys(session, secret_or_configured(secret))) is not None:
        if not allow_forgotten:
            raise SubscriberError(f"{email} was forgotten at their request and is not added "
                                  "again (pass --allow-forgotten if they asked to return)")
        _unforget(session, email, secret=secret_or_configured(secret))
    now = utcnow()
    status = SubscriberStatus.ACTIVE if confirmed else SubscriberStatus.PENDING
    subscriber = Subscriber(email=email, status=status, created_at=now, updated_at=now,
                            confirmed_at=now if confirmed else None, source=source)
    session.add(subscriber)
    session.flush()
    _record_creation(session, subscriber, source=source,
                     detail={"confirmed_by": "operator"} if confirmed else None)
    session.commit()
    return subscriber, AddOutcome.ADDED


def remove_subscriber(session: Session, raw_email: str, *, source: str = "cli") -> Subscriber:
    """Unsubscribe an address (a bounced or complained one stays suppressed as it is)."""
    subscriber = require_subscriber(session, raw_email)
    _unsubscribe(session, subscriber, source=source)
    return subscriber


def forget_subscriber(session: Session, raw_email: str, *, secret: str) -> ForgetReport:
    """Erase an address and everything personal about it; keep only a keyed hash of it.

    The subscriber, its change history and its ledger rows go; provider events about it stay
    for the statistics but lose the address and the payload. An address that was never a
    subscriber is remembered too, so it is never imported. The report says what was there.
    """
    email = normalise_address(raw_email)
    keys = forget_keys(session, secret, create=True)  # before the erasure's writes
    already = forgotten_hash(session, email, keys) is not None
    subscriber = get_by_email(session, email)
    status, history, deliveries, events = (_erase(session, subscriber) if subscriber is not None
                                           else (None, 0, 0, 0))
    events += _redact_events(session, email=email, delivery_ids=())
    remember_forgotten(session, email, keys)
    session.commit()
    shown_as = subscriber.email if subscriber is not None else email  # as the reader spelt it
    return ForgetReport(shown_as, status, history, deliveries, events_redacted=events,
                        already_forgotten=already)


def _erase(session: Session, subscriber: Subscriber) -> tuple[str, int, int, int]:
    """(status, history rows, deliveries, events redacted) of the erased subscriber."""
    status = SubscriberStatus(subscriber.status).value
    delivery_ids = session.execute(
        select(col(Delivery.id)).where(col(Delivery.subscriber_id) == subscriber.id)).scalars().all()
    events = _redact_events(session, email=subscriber.email, delivery_ids=delivery_ids)
    deliveries = rows_changed(session.execute(
        delete(Delivery).where(col(Delivery.subscriber_id) == subscriber.id)))
    history = rows_changed(session.execute(delete(SubscriberChange).where(
        col(SubscriberChange.subscriber_id) == subscriber.id)))
    session.delete(subscriber)
    session.flush()
    return status, history, deliveries, events


def _redact_events(session: Session, *, email: str, delivery_ids: Iterable[int]) -> int:
    matches = [func.lower(col(DeliveryEventRecord.recipient)) == email.lower()]
    ids = list(delivery_ids)
    if ids:
        matches.append(col(DeliveryEventRecord.delivery_id).in_(ids))
    return rows_changed(session.execute(
        update(DeliveryEventRecord)
        .where(or_(*matches))
        .values(recipient="(forgotten)", raw="{}", diagnostic=None, delivery_id=None)
        .execution_options(synchronize_session=False)
    ))
