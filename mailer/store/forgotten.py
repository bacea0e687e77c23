"""Forgotten addresses: the keyed hashes an erasure leaves, so an address is never re-added.

Each erasure leaves two hashes when they differ: the spelling's and its mailbox's
(mailer.addresses.canonical_mailbox), so Gmail's dots, googlemail.com and +tags of a forgotten
address are forgotten too; a lookup checks both, so rows holding only a spelling still count.

Used by the subscribers' commands (forget, add, confirm) and by the CSV and Mailchimp imports.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from mailer.addresses import canonical_mailbox
from mailer.config import INSECURE_SECRET_KEYS, get_settings
from mailer.domain import utcnow
from mailer.store.models import ForgottenAddress, StoreSecret, table_of
from mailer.tokens import FORGET_HASH_PREFIX, address_hash, forget_hash


def secret_or_configured(secret: str | None) -> str:
    """The signing key passed in, else MAILER_SECRET_KEY (callers that have settings pass it)."""
    return secret if secret is not None else get_settings().secret_key


# -- forget hashes -----------------------------------------------------------------------------
# A forgotten address leaves forget_hash(pepper, address): the pepper is random and lives in
# this database, so rotating MAILER_SECRET_KEY (or a cron job run without it) never lets the
# address back in. Rows from earlier versions were keyed by the signing key; they are checked
# with the current key and the old built-in ones, and rewritten with the pepper when an import
# or a forget meets their address again (a hash cannot be rewritten without its address).

FORGET_PEPPER = "forget-pepper"


@dataclass(frozen=True)
class ForgetReport:
    """What one forget found and erased, so the operator is told the truth (exit 0 either way)."""
    email: str
    reader_status: str | None  # None: no reader had the address
    history_rows: int = 0
    deliveries: int = 0
    events_redacted: int = 0  # provider events kept for the statistics, without the address
    already_forgotten: bool = False


@dataclass(frozen=True)
class ForgetKeys:
    pepper: str | None  # None until the first address is forgotten
    legacy_secrets: tuple[str, ...]  # empty when no old-style row is left

    def hashes(self, email: str) -> list[str]:
        """Every hash this address may have been stored under, the current kinds first."""
        legacy = [address_hash(secret, email) for secret in self.legacy_secrets]
        return self.current_hashes(email) + legacy

    def current_hashes(self, email: str) -> list[str]:
        """The spelling's hash and its mailbox's (no +tag, Gmail without dots): forgetting one
        spelling forgets them all, and rows that hold only a spelling's hash still count."""
        if not self.pepper:
            return []
        spellings = dict.fromkeys((email, canonical_mailbox(email)))
        return list(dict.fromkeys(forget_hash(self.pepper, spelling) for spelling in spellings))


def forget_keys(session: Session, secret: str | None, *, create: bool = False) -> ForgetKeys:
    legacy: tuple[str, ...] = ()
    if session.execute(select(col(ForgottenAddress.address_hash)).where(
            ~col(ForgottenAddress.address_hash).startswith(FORGET_HASH_PREFIX)).limit(1)).first():
        legacy = tuple(dict.fromkeys(k for k in (secret, *sorted(INSECURE_SECRET_KEYS)) if k))
    return ForgetKeys(_forget_pepper(session, create=create), legacy)


def _forget_pepper(session: Session, *, create: bool) -> str | None:
    row = session.get(StoreSecret, FORGET_PEPPER)
    if row is None and create:
        dialect = session.get_bind().dialect.name
        builder = pg_insert if dialect == "postgresql" else sqlite_insert
        # Two processes forgetting at once: the first pepper written wins, both use it.
        session.execute(builder(table_of(StoreSecret)).values(
            name=FORGET_PEPPER, value=secrets.token_hex(32), created_at=utcnow(),
        ).on_conflict_do_nothing())
        row = session.get(StoreSecret, FORGET_PEPPER)
    return row.value if row is not None else None


def forgotten_hash(session: Session, email: str, keys: ForgetKeys) -> str | None:
    """The stored hash that forgets ``email``, or None."""
    hashes = keys.hashes(email)
    if not hashes:
        return None
    return session.execute(select(col(ForgottenAddress.address_hash)).where(
        col(ForgottenAddress.address_hash).in_(hashes)).limit(1)).scalars().first()


def remember_forgotten(session: Session, email: str, keys: ForgetKeys) -> None:
    """Store the current hashes of ``email`` and drop old-style ones (needs ``keys.pepper``)."""
    current = keys.current_hashes(email)
    legacy = keys.hashes(email)[len(current):]
    if legacy:
        session.execute(delete(ForgottenAddress).where(col(ForgottenAddress.address_hash).in_(legacy)))
    for digest in current:
        if session.get(ForgottenAddress, digest) is None:
            session.add(ForgottenAddress(address_hash=digest, forgotten_at=utcnow()))
