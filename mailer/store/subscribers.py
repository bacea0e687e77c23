"""Subscribers: addresses, double opt-in, the consent record, imports, exports and erasure.

Every state change goes through :func:`change_status`, which writes a ``SubscriberChange`` row
(when, from which source, with what detail): that history is the consent and suppression
record. Each public function commits its own unit of work before it returns.
"""

from __future__ import annotations

import csv
import re
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_local_part
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailer.audience_files import data_rows
from mailer.config import INSECURE_SECRET_KEYS, get_settings
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import (
    InvalidAddress,
    SubscriberError,
    TokenInvalid,
    TokenUsed,
    UnknownSubscriber,
)
from mailer.store.models import (
    Delivery,
    DeliveryEventRecord,
    ForgottenAddress,
    StoreSecret,
    Subscriber,
    SubscriberChange,
)
from mailer.suppression import may_change
from mailer.tokens import (
    FORGET_HASH_PREFIX,
    address_hash,
    forget_hash,
    read_confirm_token,
    read_unsubscribe_token,
)

MAX_ADDRESS_LENGTH = 254  # RFC 5321's limit on a forward path, less the angle brackets
IMPORT_CHUNK_ROWS = 2_000
# Columns `export` writes that an import of that file must not copy into attrs.
_EXPORT_ONLY_COLUMNS = frozenset({"id", "status", "created_at", "updated_at", "confirmed_at",
                                  "source"})
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")


# -- addresses ---------------------------------------------------------------------------------


def normalise_address(raw: str, *, check_deliverability: bool = False) -> str:
    """The one spelling mailer stores: trimmed, ASCII (IDNA) domain in lower case, validated.

    The local part keeps its case (RFC 5321 lets servers tell ``Ann`` from ``ann``). Raises
    :class:`InvalidAddress` with the reason; nothing else.
    """
    if not isinstance(raw, str):
        raise InvalidAddress("an e-mail address must be text")
    if "\r" in raw or "\n" in raw:
        raise InvalidAddress("an e-mail address cannot contain a line break")
    candidate = raw.strip(" \t")
    if not candidate:
        raise InvalidAddress("the e-mail address is empty")
    if len(candidate) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(f"the e-mail address is longer than {MAX_ADDRESS_LENGTH} characters")
    if _CONTROL_CHAR.search(candidate):
        raise InvalidAddress("the e-mail address contains a control character")
    address = _validated_ascii_address(candidate, check_deliverability)
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(f"the e-mail address is longer than {MAX_ADDRESS_LENGTH} characters")
    return address


def _validated_ascii_address(candidate: str, check_deliverability: bool) -> str:
    if not check_deliverability:
        fast = _plain_address_fast(candidate)
        if fast is not None:
            return fast
    return _validated_by_email_validator(candidate, check_deliverability)


def _validated_by_email_validator(candidate: str, check_deliverability: bool) -> str:
    try:
        # SES only delivers to ASCII local parts, so SMTPUTF8 addresses are refused up front.
        result = validate_email(candidate, check_deliverability=check_deliverability,
                                allow_smtputf8=False)
    except EmailNotValidError as error:
        raise InvalidAddress(f"{_shorten(candidate)} is not a valid e-mail address: {error}") from None
    except (UnicodeError, ValueError) as error:  # exotic IDNA input the validator did not wrap
        raise InvalidAddress(f"{_shorten(candidate)} is not a valid e-mail address: {error}") from None
    return f"{result.local_part}@{result.ascii_domain.lower()}"


_NOT_SIMPLE = re.compile(r'["<>()\[\]\\ ,;:]')


def _plain_address_fast(candidate: str) -> str | None:
    """The same answer as email-validator for a plain ASCII address, or None to ask it.

    Imports validate 100,000 addresses from a few thousand domains; validating each domain once
    (IDNA and all) instead of once per address makes an import about twice as fast. Anything
    unusual, and every failure, goes the full way so the error message is email-validator's.
    """
    if not candidate.isascii() or candidate.count("@") != 1:
        return None
    if _NOT_SIMPLE.search(candidate):
        return None
    local, domain = candidate.split("@")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        return None
    try:
        validate_email_local_part(local, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return f"{local}@{ascii_domain}"


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str | None:
    try:
        return validate_email(f"probe@{domain}", check_deliverability=False,
                              allow_smtputf8=False).ascii_domain.lower()
    except (EmailNotValidError, UnicodeError, ValueError):
        return None


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        func.lower(Subscriber.email) == email.lower())).scalars().first()


def _require(session: Session, raw_email: str) -> Subscriber:
    email = normalise_address(raw_email)
    subscriber = get_by_email(session, email)
    if subscriber is None:
        raise UnknownSubscriber(f"{email} is not a subscriber")
    return subscriber


def _secret(secret: str | None) -> str:
    return secret if secret is not None else get_settings().secret_key


def is_forgotten(session: Session, email: str, *, secret: str | None = None) -> bool:
    return _forgotten_hash(session, email, _forget_keys(session, _secret(secret))) is not None


# -- forget hashes -----------------------------------------------------------------------------
# A forgotten address leaves forget_hash(pepper, address): the pepper is random and lives in
# this database, so rotating MAILER_SECRET_KEY (or a cron job run without it) never lets the
# address back in. Rows from earlier versions were keyed by the signing key; they are checked
# with the current key and the old built-in ones, and rewritten with the pepper when an import
# or a forget meets their address again (a hash cannot be rewritten without its address).

FORGET_PEPPER = "forget-pepper"


@dataclass(frozen=True)
class _ForgetKeys:
    pepper: str | None  # None until the first address is forgotten
    legacy_secrets: tuple[str, ...]  # empty when no old-style row is left

    def hashes(self, email: str) -> list[str]:
        """Every hash this address may have been stored under, the current kind first."""
        current = [forget_hash(self.pepper, email)] if self.pepper else []
        return current + [address_hash(secret, email) for secret in self.legacy_secrets]


def _forget_keys(session: Session, secret: str | None, *, create: bool = False) -> _ForgetKeys:
    legacy: tuple[str, ...] = ()
    if session.execute(select(ForgottenAddress.address_hash).where(
            ~ForgottenAddress.address_hash.startswith(FORGET_HASH_PREFIX)).limit(1)).first():
        legacy = tuple(dict.fromkeys(k for k in (secret, *sorted(INSECURE_SECRET_KEYS)) if k))
    return _ForgetKeys(_forget_pepper(session, create=create), legacy)


def _forget_pepper(session: Session, *, create: bool) -> str | None:
    row = session.get(StoreSecret, FORGET_PEPPER)
    if row is None and create:
        dialect = session.get_bind().dialect.name
        builder = pg_insert if dialect == "postgresql" else sqlite_insert
        # Two processes forgetting at once: the first pepper written wins, both use it.
        session.execute(builder(StoreSecret.__table__).values(
            name=FORGET_PEPPER, value=secrets.token_hex(32), created_at=utcnow(),
        ).on_conflict_do_nothing())
        row = session.get(StoreSecret, FORGET_PEPPER)
    return row.value if row is not None else None


def _forgotten_hash(session: Session, email: str, keys: _ForgetKeys) -> str | None:
    """The stored hash that forgets ``email``, or None."""
    hashes = keys.hashes(email)
    if not hashes:
        return None
    return session.execute(select(ForgottenAddress.address_hash).where(
        ForgottenAddress.address_hash.in_(hashes)).limit(1)).scalars().first()


def _remember_forgotten(session: Session, email: str, keys: _ForgetKeys) -> None:
    """Store the current hash of ``email`` and drop old-style ones (needs ``keys.pepper``)."""
    current, *legacy = keys.hashes(email)
    if legacy:
        session.execute(delete(ForgottenAddress).where(ForgottenAddress.address_hash.in_(legacy)))
    if session.get(ForgottenAddress, current) is None:
        session.add(ForgottenAddress(address_hash=current, forgotten_at=utcnow()))


# -- state changes -----------------------------------------------------------------------------


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
    subscriber.status = to
    subscriber.updated_at = now
    session.add(subscriber)
    session.flush()
    session.add(SubscriberChange(subscriber_id=subscriber.id, at=now, from_status=current,
                                 to_status=to, source=source, detail=_json_or_none(detail)))
    return True


def _json_or_none(detail: dict | None) -> str | None:
    return json.dumps(detail, sort_keys=True, default=str) if detail else None


def _record_creation(session: Session, subscriber: Subscriber, *, source: str,
                     detail: dict | None) -> None:
    session.add(SubscriberChange(subscriber_id=subscriber.id, at=subscriber.created_at,
                                 from_status=None, to_status=subscriber.status, source=source,
                                 detail=_json_or_none(detail)))


# -- double opt-in -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscribeOutcome:
    subscriber: Subscriber
    confirm_token: str | None  # set only when a confirmation mail must be sent now


def request_subscription(session: Session, raw_email: str, *, secret: str, source: str = "web",
                         ip: str | None = None, min_interval: int = 3600) -> SubscribeOutcome:
    """Someone asked to subscribe ``raw_email``: decide whether a confirmation mail goes out.

    The caller must answer the same way whatever happens here, so nobody can learn from the
    answer who reads the newsletter.
    """
    email = normalise_address(raw_email)
    subscriber = get_by_email(session, email)
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


def _nonce_fingerprint(nonce: str) -> str:
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
    claimed = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id, Subscriber.confirm_nonce == nonce)
        .values(confirm_nonce=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        session.rollback()
        raise TokenUsed("this confirmation link has already been used")
    subscriber.confirm_nonce = None
    subscriber.confirm_ip = ip
    detail = {"ip": ip, "signup_ip": subscriber.signup_ip,
              "confirm_sent_at": _iso(subscriber.confirm_sent_at),
              "confirmation": _nonce_fingerprint(nonce)}
    _apply_status(session, subscriber, SubscriberStatus.ACTIVE, source="web-confirm",
                  detail=detail)
    _unforget(session, subscriber.email, secret=secret)
    session.commit()
    return subscriber


def _unforget(session: Session, email: str, *, secret: str) -> None:
    # They confirmed anew: the erasure no longer stands in the way of their own wish.
    hashes = _forget_keys(session, secret).hashes(email)
    if hashes:
        session.execute(delete(ForgottenAddress).where(ForgottenAddress.address_hash.in_(hashes)))


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


def add_subscriber(session: Session, raw_email: str, *, confirmed: bool = False,
                   source: str = "cli", secret: str | None = None,
                   allow_forgotten: bool = False) -> tuple[Subscriber, bool]:
    """Add an address by hand; returns (row, created). An existing row is left as it is,
    except that ``confirmed`` activates a pending one.

    A forgotten address is refused unless ``allow_forgotten`` (the person asked again).
    """
    email = normalise_address(raw_email)
    existing = get_by_email(session, email)
    if existing is not None:
        if confirmed and existing.status == SubscriberStatus.PENDING:
            change_status(session, existing, SubscriberStatus.ACTIVE, source=source,
                          detail={"confirmed_by": "operator"})
        return existing, False
    if _forgotten_hash(session, email, _forget_keys(session, _secret(secret))) is not None:
        if not allow_forgotten:
            raise SubscriberError(f"{email} was forgotten at their request and is not added "
                                  "again (pass --allow-forgotten if they asked to return)")
        _unforget(session, email, secret=_secret(secret))
    now = utcnow()
    status = SubscriberStatus.ACTIVE if confirmed else SubscriberStatus.PENDING
    subscriber = Subscriber(email=email, status=status, created_at=now, updated_at=now,
                            confirmed_at=now if confirmed else None, source=source)
    session.add(subscriber)
    session.flush()
    _record_creation(session, subscriber, source=source,
                     detail={"confirmed_by": "operator"} if confirmed else None)
    session.commit()
    return subscriber, True


def remove_subscriber(session: Session, raw_email: str, *, source: str = "cli") -> Subscriber:
    """Unsubscribe an address (a bounced or complained one stays suppressed as it is)."""
    subscriber = _require(session, raw_email)
    _unsubscribe(session, subscriber, source=source)
    return subscriber


def forget_subscriber(session: Session, raw_email: str, *, secret: str) -> None:
    """Erase an address and everything personal about it; keep only a keyed hash of it.

    The subscriber, its change history and its ledger rows go; provider events about it stay
    for the statistics but lose the address and the payload. An address that was never a
    subscriber is remembered too, so it is never imported.
    """
    email = normalise_address(raw_email)
    keys = _forget_keys(session, secret, create=True)  # before the erasure's writes
    subscriber = get_by_email(session, email)
    if subscriber is not None:
        _erase(session, subscriber)
    _redact_events(session, email=email, delivery_ids=())
    _remember_forgotten(session, email, keys)
    session.commit()


def _erase(session: Session, subscriber: Subscriber) -> None:
    delivery_ids = session.execute(
        select(Delivery.id).where(Delivery.subscriber_id == subscriber.id)).scalars().all()
    _redact_events(session, email=subscriber.email, delivery_ids=delivery_ids)
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber.id))
    session.execute(delete(SubscriberChange).where(
        SubscriberChange.subscriber_id == subscriber.id))
    session.delete(subscriber)
    session.flush()


def _redact_events(session: Session, *, email: str, delivery_ids: Iterable[int]) -> None:
    matches = [func.lower(DeliveryEventRecord.recipient) == email.lower()]
    ids = list(delivery_ids)
    if ids:
        matches.append(DeliveryEventRecord.delivery_id.in_(ids))
    session.execute(
        update(DeliveryEventRecord)
        .where(or_(*matches))
        .values(recipient="(forgotten)", raw="{}", diagnostic=None, delivery_id=None)
        .execution_options(synchronize_session=False)
    )


def count_by_status(session: Session) -> dict[str, int]:
    """Subscribers per status, every status present (zero when none)."""
    counts = {status.value: 0 for status in SubscriberStatus}
    rows = session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
    for status, count in rows:
        counts[str(status)] = count
    return counts


def list_subscribers(session: Session, *, status: SubscriberStatus | None = None,
                     limit: int | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def history(session: Session, raw_email: str) -> tuple[Subscriber, list[SubscriberChange]]:
    """A subscriber and its changes, oldest first: the consent record."""
    subscriber = _require(session, raw_email)
    changes = session.execute(
        select(SubscriberChange).where(SubscriberChange.subscriber_id == subscriber.id)
        .order_by(SubscriberChange.at, SubscriberChange.id)).scalars().all()
    return subscriber, list(changes)


# -- export ------------------------------------------------------------------------------------


def export_subscribers(session: Session, *,
                       status: SubscriberStatus | None = None) -> Iterator[dict]:
    """Every subscriber (or those in ``status``) as a dict, streamed page by page by id."""
    last_id = 0
    while True:
        query = select(Subscriber).where(Subscriber.id > last_id).order_by(Subscriber.id)
        if status is not None:
            query = query.where(Subscriber.status == status)
        page = session.execute(query.limit(1_000)).scalars().all()
        if not page:
            return
        for subscriber in page:
            yield _export_row(subscriber)
        last_id = page[-1].id
        session.expunge_all()  # keep memory flat on large lists


def _export_row(subscriber: Subscriber) -> dict:
    return {
        "email": subscriber.email,
        "status": str(subscriber.status),
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "source": subscriber.source,
        "attrs": json.loads(subscriber.attrs) if subscriber.attrs else {},
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def spreadsheet_safe(value: str) -> str:
    """Keep a CSV cell from being run as a formula when someone opens the file in a sheet."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


# -- import ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    added: int = 0
    existing: int = 0  # already subscribers (any status): left as they are
    duplicates: int = 0  # the same address again further down the file
    forgotten: list[tuple[int, str]] = field(default_factory=list)  # (line, address) skipped
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    @property
    def rows(self) -> int:
        return self.added + self.existing + self.duplicates + len(self.forgotten) + len(
            self.invalid)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows, "added": self.added, "existing": self.existing,
            "duplicates": self.duplicates,
            "forgotten": [{"line": line, "email": email} for line, email in self.forgotten],
            "invalid": [{"line": line, "reason": reason} for line, reason in self.invalid],
        }


@dataclass(frozen=True)
class _Candidate:
    line: int
    email: str
    attrs: str | None


def import_csv(engine: Engine, path: Path, *, confirmed: bool = False, source: str = "import",
               secret: str | None = None,
               on_rows: Callable[[int], None] | None = None) -> ImportReport:
    """Add the addresses of a CSV file with an ``email`` column; other columns go to attrs.

    Streams the file and commits chunk by chunk, so a large file never sits in memory and an
    interrupted import is simply run again: rows already there are counted, never changed.
    A bad row is reported with its line number and skipped. ``on_rows`` hears how many more
    lines were read after each chunk (progress for the caller to show).
    """
    path = Path(path)
    key = _secret(secret)
    report = ImportReport()
    try:
        handle = path.open(newline="", encoding="utf-8-sig", errors="replace")
    except OSError as error:
        raise SubscriberError(f"cannot read {path}: {error.strerror or error}") from None
    with handle, Session(engine, expire_on_commit=False) as session:
        reader = csv.reader(handle)
        email_index, header = _read_header(reader, path)
        seen: set[str] = set()
        chunk: list[_Candidate] = []
        told = 0
        for line, cells in _rows(reader, report):
            candidate = _candidate(line, cells, email_index, header, report, seen)
            if candidate is not None:
                chunk.append(candidate)
            if len(chunk) >= IMPORT_CHUNK_ROWS:
                _import_chunk(session, chunk, report, confirmed=confirmed, source=source,
                              secret=key, file_name=path.name)
                chunk = []
                told = _tell_progress(on_rows, reader.line_num, told)
        if chunk:
            _import_chunk(session, chunk, report, confirmed=confirmed, source=source,
                          secret=key, file_name=path.name)
        _tell_progress(on_rows, reader.line_num, told)
    return report


def _tell_progress(on_rows: Callable[[int], None] | None, line: int, told: int) -> int:
    """Tell ``on_rows`` the data lines read since ``told`` (the header is not a row)."""
    if on_rows is not None and line - 1 > told:
        on_rows(line - 1 - told)
    return max(told, line - 1)


def _read_header(reader: Iterator[list[str]], path: Path) -> tuple[int, list[str]]:
    try:
        header = next(reader)
    except StopIteration:
        raise SubscriberError(f"{path.name} is empty: expected a header row with an "
                              "'email' column") from None
    except csv.Error as error:
        raise SubscriberError(f"{path.name}: cannot read the header row: {error}") from None
    names = [name.strip().lower() for name in header]
    if "email" not in names:
        raise SubscriberError(f"{path.name} has no 'email' column in its header row "
                              f"(found: {', '.join(_shorten(n, 30) for n in names) or 'nothing'})")
    return names.index("email"), names


def _rows(reader, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each data row; unreadable rows go to the report."""
    for line, cells in data_rows(reader):  # the same reading as the Mailchimp import's
        if isinstance(cells, str):
            report.invalid.append((line, cells))
        else:
            yield line, cells


def _candidate(line: int, cells: list[str], email_index: int, header: list[str],
               report: ImportReport, seen: set[str]) -> _Candidate | None:
    raw = cells[email_index] if email_index < len(cells) else ""
    if raw.startswith("'") and raw[1:].startswith(_FORMULA_PREFIXES):
        raw = raw[1:]  # undo spreadsheet_safe() from our own export
    try:
        email = normalise_address(raw)
    except InvalidAddress as error:
        report.invalid.append((line, str(error)))
        return None
    folded = email.casefold()
    if folded in seen:
        report.duplicates += 1
        return None
    seen.add(folded)
    return _Candidate(line, email, _attrs(cells, header, email_index))


def _attrs(cells: list[str], header: list[str], email_index: int) -> str | None:
    attrs: dict[str, str] = {}
    for index, value in enumerate(cells):
        if index == email_index or not value:
            continue
        name = header[index] if index < len(header) else f"column_{index + 1}"
        if name == "attrs":
            attrs.update(_json_object(value))
        elif name and name not in _EXPORT_ONLY_COLUMNS:
            attrs[name] = value
    return json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else None


def _json_object(value: str) -> dict:
    try:
        parsed = json.loads(value)
    except ValueError:
        return {"attrs": value}
    return {str(k): v for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def _import_chunk(session: Session, chunk: list[_Candidate], report: ImportReport, *,
                  confirmed: bool, source: str, secret: str, file_name: str) -> None:
    fresh = _drop_forgotten(session, chunk, report, secret=secret)
    if not fresh:
        return
    now = utcnow()
    status = SubscriberStatus.ACTIVE if confirmed else SubscriberStatus.PENDING
    rows = [{"email": c.email, "status": status.value, "created_at": now, "updated_at": now,
             "confirmed_at": now if confirmed else None, "source": source, "attrs": c.attrs}
            for c in fresh]
    # ON CONFLICT DO NOTHING (on either unique index: the address or its lower case): an
    # address already there, or arriving meanwhile from the web form, counts as "existing".
    inserted = session.execute(
        _insert_ignoring_duplicates(session).returning(Subscriber.__table__.c.id,
                                                       Subscriber.__table__.c.email), rows
    ).all()
    lines = {c.email: c.line for c in fresh}
    if inserted:
        session.execute(insert(SubscriberChange.__table__), [
            {"subscriber_id": subscriber_id, "at": now, "from_status": None,
             "to_status": status.value, "source": source,
             "detail": json.dumps({"file": file_name, "line": lines[email]})}
            for subscriber_id, email in inserted
        ])
    session.commit()
    report.added += len(inserted)
    report.existing += len(fresh) - len(inserted)


def _insert_ignoring_duplicates(session: Session):
    dialect = session.get_bind().dialect.name
    builder = pg_insert if dialect == "postgresql" else sqlite_insert
    # The table, not the ORM class: plain Core executemany, no per-row ORM bookkeeping.
    return builder(Subscriber.__table__).on_conflict_do_nothing()


def _drop_forgotten(session: Session, chunk: list[_Candidate], report: ImportReport, *,
                    secret: str) -> list[_Candidate]:
    keys = session.info.get("forget_keys")  # one look-up per import, not per chunk
    if keys is None:
        keys = session.info["forget_keys"] = _forget_keys(session, secret)
    hashes = {h: c for c in chunk for h in keys.hashes(c.email)}
    if not hashes:
        return chunk
    found = set(session.execute(select(ForgottenAddress.address_hash).where(
        ForgottenAddress.address_hash.in_(list(hashes)))).scalars())
    forgotten = {hashes[h].line: hashes[h] for h in found}
    for line in sorted(forgotten):
        report.forgotten.append((line, forgotten[line].email))
    old_style = {hashes[h].line: hashes[h] for h in found if not h.startswith(FORGET_HASH_PREFIX)}
    if old_style:
        _upgrade_forget_hashes(session, list(old_style.values()), secret)
    return [c for c in chunk if c.line not in forgotten]


def _upgrade_forget_hashes(session: Session, candidates: list[_Candidate], secret: str) -> None:
    # Met again, so they can be rehashed with the pepper: then a key rotation cannot free them.
    keys = session.info["forget_keys"] = _forget_keys(session, secret, create=True)
    for candidate in candidates:
        _remember_forgotten(session, candidate.email, keys)
    session.commit()
