"""Subscribers' rows: find one, create one, write a status with its history row, erase one.

This is persistence only. The opt-in workflow (request, confirm, unsubscribe, add, remove) is a
use case, :mod:`mailer.subscriptions.workflow`; the moves it and everyone else may make are the
one table of :mod:`mailer.subscription_states`. Reading the list (counts per status, listings,
one subscriber's history, growth) is :mod:`mailer.reads.subscriber_figures`.

Address normalisation is :mod:`mailer.addresses`, forgotten-address hashes
:mod:`mailer.store.forgotten`, CSV import and export :mod:`mailer.store.subscriber_files`; their
public names stay importable from here.

Every state change goes through :func:`change_status`, which writes a ``SubscriberChange`` row
(when, from which source, with what detail): that history is the consent and suppression
record; it writes no move the table does not allow.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlmodel import Session, col

from mailer.addresses import (  # re-exported: every caller normalises through this module
    MAX_ADDRESS_LENGTH as MAX_ADDRESS_LENGTH,
    _ascii_domain as _ascii_domain,
    _validated_ascii_address as _validated_ascii_address,
    _validated_by_email_validator as _validated_by_email_validator,
    normalise_address as normalise_address,
)
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import InvalidAddress, UnknownSubscriber
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
    export_subscribers as export_subscribers,
    import_csv as import_csv,
    spreadsheet_safe as spreadsheet_safe,
)
from mailer.subscription_states import Event, allows


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
                  source: str, event: Event | None = None, detail: dict | None = None,
                  commit: bool = True) -> bool:
    """Move ``subscriber`` to ``to`` by ``event`` and record why; False when nothing changed.

    Whether it may is :func:`mailer.subscription_states.allows`' answer: the move must be in
    the workflow's table (under ``event``; None: under any) and ``source`` one who may make it
    (only an operator lifts a suppression, provider evidence only tightens one). A change to
    the same status records nothing. ``commit=False`` leaves the change in the caller's
    transaction (events/apply keeps an SES event, its ledger row and the suppression in one).
    """
    changed = _apply_status(session, subscriber, SubscriberStatus(to), source=source,
                            event=event, detail=detail)
    if commit:
        session.commit()
    return changed


def _apply_status(session: Session, subscriber: Subscriber, to: SubscriberStatus, *,
                  source: str, event: Event | None, detail: dict | None) -> bool:
    current = SubscriberStatus(subscriber.status)
    if to is current or not allows(current, to, event, source=source):
        return False
    now = utcnow()
    if to is SubscriberStatus.ACTIVE:
        subscriber.confirmed_at = now
    if to is not SubscriberStatus.PENDING:
        subscriber.confirm_nonce = None  # a pending link must not revive a changed subscriber
    # a change of address asked for before no longer stands (issue 26)
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


def create_subscriber(session: Session, email: str, status: SubscriberStatus, *, source: str,
                      at: datetime, detail: dict | None = None, **columns) -> Subscriber:
    """A new row for the normalised ``email`` in ``status``, made ``at`` (``columns``: its
    other fields), with its creation in the history; flushed, not committed (IntegrityError:
    the address is there already)."""
    subscriber = Subscriber(email=email, status=status, created_at=at, updated_at=at,
                            source=source, **columns)
    session.add(subscriber)
    session.flush()
    session.add(SubscriberChange(subscriber_id=stored_id(subscriber.id), at=subscriber.created_at,
                                 from_status=None, to_status=subscriber.status, source=source,
                                 detail=_json_or_none(detail)))
    return subscriber


# -- confirmation links ------------------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def renew_confirmation(session: Session, subscriber: Subscriber, *, source: str,
                       ip: str | None) -> None:
    """A new confirmation nonce on the row (earlier links stop working), sent now; not
    committed."""
    now = utcnow()
    subscriber.confirm_nonce = new_nonce()
    subscriber.confirm_sent_at = now
    subscriber.signup_ip = ip
    subscriber.source = source
    subscriber.updated_at = now
    session.add(subscriber)


CONFIRM_SOURCE = "web-confirm"  # the history source of a confirmation through the link


def nonce_fingerprint(nonce: str) -> str:
    # Identifies which confirmation mail was answered without keeping a usable secret.
    return hashlib.sha256(nonce.encode()).hexdigest()[:16]


def confirmation_detail(subscriber: Subscriber, nonce: str, ip: str | None) -> dict:
    """What a confirmation through the link writes in the history: the consent record, and
    which mail was answered (mailer.store.confirmations reads it back)."""
    sent = subscriber.confirm_sent_at
    return {"ip": ip, "signup_ip": subscriber.signup_ip,
            "confirm_sent_at": sent.isoformat() if sent is not None else None,
            "confirmation": nonce_fingerprint(nonce)}


def claim_confirm_nonce(session: Session, subscriber: Subscriber, nonce: str, *,
                        ip: str | None) -> bool:
    """Spend the row's confirmation nonce atomically, so two simultaneous clicks cannot both
    confirm; True for the one that did (its ``ip`` noted), False when it was spent already."""
    claimed = rows_changed(session.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == subscriber.id, col(Subscriber.confirm_nonce) == nonce)
        .values(confirm_nonce=None)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        return False
    subscriber.confirm_nonce = None
    subscriber.confirm_ip = ip
    return True


def unforget(session: Session, email: str, *, secret: str) -> None:
    """Drop the erasure hashes of ``email``: its owner asked to come back (not committed)."""
    hashes = forget_keys(session, secret).hashes(email)
    if hashes:
        session.execute(delete(ForgottenAddress).where(col(ForgottenAddress.address_hash).in_(hashes)))


# -- erasure -----------------------------------------------------------------------------------


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
