"""Signed tokens for the links in mail. Pure: no database, no clock but the signature's own.

- Confirm tokens carry (subscriber id, nonce), are timestamped and expire; the store makes them
  single-use by clearing the nonce when one is spent.
- Unsubscribe tokens carry the subscriber id only and never expire (RFC 8058 links in old mail
  must keep working); they are bound to one subscriber and cannot be forged without the key.
- Nothing is signed or checked with a missing, example or old built-in key: a link signed with
  a key the web app does not have fails for every reader (ConfigError naming MAILER_SECRET_KEY).
- Manage tokens (the reader's own page) have the unsubscribe token's shape and lifetime but a
  key of their own: an old issue's "Manage" link must still reach the page, yet a leaked
  List-Unsubscribe URL must not open the page that can change the address or erase the reader.
- Address-change tokens (the reader's page, "Change my address") carry (subscriber id, old
  address, new address, nonce), are timestamped and expire like confirm tokens, with a salt of
  their own; the store makes them single-use by clearing the nonce, and refuses one whose old
  address is no longer the reader's.
- Forget hashes are keyed by the database's own pepper, not by the signing key, so rotating
  MAILER_SECRET_KEY never lets a forgotten address back in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from mailer.config import require_real_secret
from mailer.errors import TokenExpired, TokenInvalid

_CONFIRM_SALT = "mailer.confirm.v1"
_UNSUBSCRIBE_SALT = "mailer.unsubscribe.v1"
_MANAGE_SALT = "mailer.manage.v1"
_ADDRESS_SALT = "mailer.address-change.v1"
_FORGET_SALT = b"mailer.forget.v2\0"
# Marks hashes keyed by the pepper; rows without it are earlier versions' address_hash().
FORGET_HASH_PREFIX = "f2:"
MAX_TOKEN_LENGTH = 512


def make_confirm_token(secret: str, subscriber_id: int, nonce: str) -> str:
    require_real_secret(secret)
    return URLSafeTimedSerializer(secret, salt=_CONFIRM_SALT).dumps([subscriber_id, nonce])


def read_confirm_token(secret: str, token: str, max_age: int) -> tuple[int, str]:
    """Return (subscriber id, nonce); raise TokenExpired or TokenInvalid."""
    require_real_secret(secret)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("this confirmation link is not valid")
    try:
        value = URLSafeTimedSerializer(secret, salt=_CONFIRM_SALT).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenExpired("this confirmation link has expired; please subscribe again") from None
    except (BadSignature, ValueError, TypeError):
        raise TokenInvalid("this confirmation link is not valid") from None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and isinstance(value[1], str)):
        raise TokenInvalid("this confirmation link is not valid")
    return value[0], value[1]


def make_address_token(secret: str, subscriber_id: int, old: str, new: str, nonce: str) -> str:
    """The link mailed to the new address: bound to the reader, both addresses and one nonce."""
    require_real_secret(secret)
    return URLSafeTimedSerializer(secret, salt=_ADDRESS_SALT).dumps(
        [int(subscriber_id), old, new, nonce])


def read_address_token(secret: str, token: str, max_age: int) -> tuple[int, str, str, str]:
    """Return (subscriber id, old address, new address, nonce); raise TokenExpired or
    TokenInvalid (a sign-up confirm token is invalid here, and this one there)."""
    require_real_secret(secret)
    invalid = "this address change link is not valid"
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid(invalid)
    try:
        value = URLSafeTimedSerializer(secret, salt=_ADDRESS_SALT).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenExpired("this address change link has expired; nothing was changed. "
                           "Ask for a new one on your subscription page.") from None
    except (BadSignature, ValueError, TypeError):
        raise TokenInvalid(invalid) from None
    if not (isinstance(value, list) and len(value) == 4 and isinstance(value[0], int)
            and all(isinstance(part, str) for part in value[1:])):
        raise TokenInvalid(invalid)
    return value[0], value[1], value[2], value[3]


@lru_cache(maxsize=8)
def _reader_link_key(secret: str, salt: str) -> bytes:
    # Derived once per secret and purpose: a send signs tokens per reader (and checks the key once).
    require_real_secret(secret)
    return hmac.new(secret.encode(), salt.encode(), hashlib.sha256).digest()


def _reader_link_signature(secret: str, salt: str, id_text: str) -> str:
    digest = hmac.new(_reader_link_key(secret, salt), id_text.encode(), hashlib.sha256).digest()
    # 128 bits of HMAC-SHA256: far beyond guessing, and the link stays short.
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _make_reader_link_token(secret: str, salt: str, subscriber_id: int) -> str:
    id_text = str(int(subscriber_id))
    return f"{id_text}.{_reader_link_signature(secret, salt, id_text)}"


def _read_reader_link_token(secret: str, salt: str, token: str, what: str) -> int:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid(f"this {what} link is not valid")
    id_text, _, signature = token.partition(".")
    if not (id_text.isascii() and id_text.isdigit() and len(id_text) <= 18
            and id_text == str(int(id_text))):
        raise TokenInvalid(f"this {what} link is not valid")
    if not hmac.compare_digest(signature.encode("ascii", "replace"),
                               _reader_link_signature(secret, salt, id_text).encode("ascii")):
        raise TokenInvalid(f"this {what} link is not valid")
    return int(id_text)


def make_unsubscribe_token(secret: str, subscriber_id: int) -> str:
    """``<id>.<signature>``: no timestamp, so it never expires; bound to one subscriber."""
    return _make_reader_link_token(secret, _UNSUBSCRIBE_SALT, subscriber_id)


def read_unsubscribe_token(secret: str, token: str) -> int:
    return _read_reader_link_token(secret, _UNSUBSCRIBE_SALT, token, "unsubscribe")


def make_manage_token(secret: str, subscriber_id: int) -> str:
    """The reader's own page: the unsubscribe token's shape and lifetime, signed apart."""
    return _make_reader_link_token(secret, _MANAGE_SALT, subscriber_id)


def read_manage_token(secret: str, token: str) -> int:
    """Whose page this is; an unsubscribe token (or any other) raises TokenInvalid."""
    return _read_reader_link_token(secret, _MANAGE_SALT, token, "manage")


_ISSUE_LINK_SALT = "mailer.issue-link.v1"
ISSUE_LINK_PURPOSES = ("hold", "preview")


def make_issue_token(secret: str, purpose: str, issue_number: int, address: str,
                     expires_at: int) -> str:
    """A link in the editors' preview mail: bound to one purpose ("hold" or "preview"), one
    issue and the editor it was mailed to, valid until ``expires_at`` (Unix seconds)."""
    require_real_secret(secret)
    if purpose not in ISSUE_LINK_PURPOSES:
        raise ValueError(f"unknown issue link purpose {purpose!r}")
    return URLSafeSerializer(secret, salt=_ISSUE_LINK_SALT).dumps(
        [purpose, int(issue_number), address, int(expires_at)])


def read_issue_token(secret: str, token: str, purpose: str, now: float) -> tuple[int, str]:
    """Return (issue number, editor address); raise TokenExpired or TokenInvalid. A token of
    another purpose (a preview link used as a hold link) is invalid."""
    require_real_secret(secret)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("this link is not valid")
    try:
        value = URLSafeSerializer(secret, salt=_ISSUE_LINK_SALT).loads(token)
    except (BadSignature, ValueError, TypeError):
        raise TokenInvalid("this link is not valid") from None
    if not (isinstance(value, list) and len(value) == 4 and value[0] == purpose
            and isinstance(value[1], int) and isinstance(value[2], str)
            and isinstance(value[3], int)):
        raise TokenInvalid("this link is not valid")
    if now > value[3]:
        raise TokenExpired("this link has expired: the issue's send is long past")
    return value[1], value[2]


def forget_hash(pepper: str, email: str) -> str:
    """What remains of a forgotten subscriber: a hash of the normalised address keyed by the
    database's random pepper (never by MAILER_SECRET_KEY, which an operator may rotate).

    Case-folded first, as :func:`address_hash`.
    """
    digest = hmac.new(pepper.encode(), _FORGET_SALT + email.casefold().encode(), hashlib.sha256)
    return FORGET_HASH_PREFIX + digest.hexdigest()


def address_hash(secret: str, email: str) -> str:
    """Earlier versions' forget hash, keyed by the signing key; still checked for old rows.

    Case-folded first: ``Ann@example.org`` and ``ann@example.org`` reach the same person at
    nearly every provider, so forgetting one must keep both from being imported again.
    """
    return hmac.new(secret.encode(), email.casefold().encode(), hashlib.sha256).hexdigest()
