"""E-mail addresses: the one spelling mailer stores, and the checks behind it. Pure.

Every intake (the sign-up form, the CLI, CSV and Mailchimp imports, test sends) normalises here,
so an address is compared, counted and suppressed the same way whatever door it came in by.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_local_part

from mailer.errors import InvalidAddress

MAX_ADDRESS_LENGTH = 254  # RFC 5321's limit on a forward path, less the angle brackets
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")


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
        raise InvalidAddress(f"{shorten(candidate)} is not a valid e-mail address: {error}") from None
    except (UnicodeError, ValueError) as error:  # exotic IDNA input the validator did not wrap
        raise InvalidAddress(f"{shorten(candidate)} is not a valid e-mail address: {error}") from None
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


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
