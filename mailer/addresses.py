"""E-mail addresses: the one spelling mailer stores, and the checks behind it. Pure.

Every intake (the sign-up form, the CLI, CSV and Mailchimp imports, test sends) normalises here,
so an address is compared, counted and suppressed the same way whatever door it came in by.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT

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
    # email-validator's own first test of a local part (validate_email_local_part), without
    # its call per address: an ASCII dot-atom is valid as it is; anything else asks it
    if DOT_ATOM_TEXT.match(local) is None:
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


# -- mailboxes: which spellings reach the same person ------------------------------------------

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Public suffixes of two labels under which many readers' mail lives: name.co.uk is one
# registrable domain, co.uk is not. Not the whole Public Suffix List (a dependency and a list to
# keep fresh): a suffix missing here only makes the limiter key one label coarser.
TWO_LABEL_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "sch.uk",
    "com.au", "net.au", "org.au", "edu.au", "gov.au", "co.nz", "org.nz", "net.nz", "ac.nz",
    "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "co.kr", "or.kr", "ac.kr", "co.in", "net.in",
    "org.in", "ac.in", "co.za", "org.za", "ac.za", "co.il", "org.il", "ac.il", "com.br",
    "net.br", "org.br", "com.mx", "com.ar", "com.cn", "net.cn", "org.cn", "edu.cn", "com.tw",
    "org.tw", "edu.tw", "com.hk", "org.hk", "com.sg", "edu.sg", "com.tr", "org.tr", "edu.tr",
    "com.pl", "com.ua", "co.id", "or.id", "ac.id", "com.my", "com.ph", "com.vn", "co.th",
    "ac.th", "com.co", "com.pe", "com.ve", "com.eg", "com.sa", "com.pk", "com.ng", "co.ke",
})


def canonical_mailbox(email: str) -> str:
    """The mailbox a normalised address delivers to: no ``+tag``, lower case; Gmail without dots
    and on gmail.com. What forgetting an address covers: these spellings are one person. Pure."""
    local, _, domain = email.rpartition("@")
    local, domain = local.lower(), domain.lower().rstrip(".")
    base = local.split("+", 1)[0]
    local = base or local  # "+tag@" has nothing before its tag: keep it whole
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def registrable_domain(domain: str) -> str:
    """``mail.example.co.uk`` → ``example.co.uk``: the part one owner registers. Pure."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def limit_mailbox(email: str) -> str:
    """The key confirmation mails are limited by: :func:`canonical_mailbox`, also without a
    ``-tag`` (Yahoo, Fastmail and many own servers deliver ``name-x@`` to ``name@``) and on the
    registrable domain (a catch-all takes ``x@anything.example``). Coarser than one person on
    purpose: it only limits mail, the stored address stays as typed. Pure."""
    local, _, domain = canonical_mailbox(email).rpartition("@")
    base = local.split("-", 1)[0]
    return f"{base or local}@{registrable_domain(domain)}"
