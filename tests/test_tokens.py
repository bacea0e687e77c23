"""Signed link tokens: what a forger, a truncating mail client or an old mail can do with them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from itsdangerous import TimestampSigner

from mailer.errors import TokenError, TokenExpired, TokenInvalid
from mailer.tokens import (
    address_hash,
    make_confirm_token,
    make_manage_token,
    make_unsubscribe_token,
    read_confirm_token,
    read_manage_token,
    read_unsubscribe_token,
)

SECRET = "token-test-secret-0123456789abcdef"
WEEK = 7 * 24 * 3600


def test_confirm_token_carries_id_and_nonce():
    token = make_confirm_token(SECRET, 42, "n0nce")
    assert read_confirm_token(SECRET, token, WEEK) == (42, "n0nce")


def test_confirm_token_expires(monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - WEEK - 60)
    token = make_confirm_token(SECRET, 1, "n")
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    with pytest.raises(TokenExpired):
        read_confirm_token(SECRET, token, WEEK)
    assert read_confirm_token(SECRET, token, 2 * WEEK) == (1, "n")


def test_unsubscribe_token_never_expires(monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 10 * 365 * 86400)
    token = make_unsubscribe_token(SECRET, 7)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert read_unsubscribe_token(SECRET, token) == 7


def test_tokens_are_bound_to_the_key_and_their_purpose():
    confirm = make_confirm_token(SECRET, 5, "n")
    unsubscribe = make_unsubscribe_token(SECRET, 5)
    with pytest.raises(TokenInvalid):
        read_unsubscribe_token(SECRET, confirm)
    with pytest.raises(TokenInvalid):
        read_confirm_token(SECRET, unsubscribe, WEEK)
    with pytest.raises(TokenInvalid):
        read_unsubscribe_token("another-secret-0123456789abcdef", unsubscribe)
    assert make_unsubscribe_token(SECRET, 6) != unsubscribe


def test_truncated_and_altered_tokens_are_invalid():
    token = make_unsubscribe_token(SECRET, 5)
    payload, signature = token.rsplit(".", 1)
    forged_payload = make_unsubscribe_token("another-key-0123456789abcdef", 6).rsplit(".", 1)[0]
    for bad in (token[:-1], token[:10], "", "a" * 600, f"{forged_payload}.{signature}",
                token.replace(payload, payload + "A")):
        with pytest.raises(TokenInvalid):
            read_unsubscribe_token(SECRET, bad)


def test_manage_token_from_an_old_issue_still_opens_the_page(monkeypatch):
    # Like the unsubscribe link, the footer's Manage link in an issue of years ago must work.
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 10 * 365 * 86400)
    token = make_manage_token(SECRET, 7)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert read_manage_token(SECRET, token) == 7


def test_an_unsubscribe_link_does_not_open_the_manage_page():
    # List-Unsubscribe URLs travel in headers that mail providers read and log; the page that
    # can change the address or erase the reader needs the footer's own link.
    unsubscribe = make_unsubscribe_token(SECRET, 5)
    manage = make_manage_token(SECRET, 5)
    assert manage != unsubscribe
    with pytest.raises(TokenInvalid, match="manage link"):
        read_manage_token(SECRET, unsubscribe)
    with pytest.raises(TokenInvalid, match="unsubscribe link"):
        read_unsubscribe_token(SECRET, manage)
    with pytest.raises(TokenInvalid):
        read_manage_token("another-secret-0123456789abcdef", manage)
    with pytest.raises(TokenInvalid):
        read_manage_token(SECRET, manage.replace("5.", "6.", 1))


@given(st.text(max_size=700))
@hsettings(max_examples=300, deadline=None)
def test_garbage_raises_only_token_errors(garbage):
    # Text nobody signed is refused, by a TokenError (a clear page), never another exception or
    # a reader id: a try/except that let a return pass would accept any garbage.
    for read in (lambda t: read_confirm_token(SECRET, t, WEEK),
                 lambda t: read_unsubscribe_token(SECRET, t),
                 lambda t: read_manage_token(SECRET, t)):
        with pytest.raises(TokenError):
            read(garbage)


def test_address_hash_is_keyed_and_ignores_letter_case():
    assert address_hash(SECRET, "Ann@example.org") == address_hash(SECRET, "ann@example.org")
    assert address_hash(SECRET, "ann@example.org") != address_hash("other" * 8, "ann@example.org")
    assert "ann" not in address_hash(SECRET, "ann@example.org")
