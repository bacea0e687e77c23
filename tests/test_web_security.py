"""Unit tests of the web app's defences: rate limiter, client IP behind proxies, headers."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from mailer.web.security import SlidingWindowLimiter, client_ip, parse_networks, rate_limit_key
from tests.fakes import FakeClock


def request_from(peer: str, forwarded: list[str] = ()) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 50000), "headers": headers})


def test_rate_limiter_refuses_the_hit_over_the_limit_and_says_when_to_retry():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, window=60, clock=clock)
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    retry = limiter.hit("a")
    assert retry == pytest.approx(60)
    assert limiter.hit("b") is None  # another client has its own budget


def test_rate_limiter_window_slides():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, window=60, clock=clock)
    limiter.hit("a")
    clock.now += 30
    limiter.hit("a")
    clock.now += 29
    assert limiter.hit("a") is not None
    clock.now += 2  # the first hit is now older than the window
    assert limiter.hit("a") is None


def test_rate_limiter_memory_is_bounded_under_a_flood_of_keys():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, window=60, clock=clock, max_keys=100)
    for index in range(1000):
        limiter.hit(f"key-{index}")
    assert len(limiter._hits) <= 100


def test_client_ip_is_the_socket_peer_without_trusted_proxies():
    request = request_from("203.0.113.9", ["198.51.100.1"])
    assert client_ip(request) == "203.0.113.9"


def test_client_ip_reads_forwarded_for_from_the_right_behind_a_trusted_proxy():
    trusted = parse_networks(["10.0.0.0/8"])
    # the client forged the left-most entry; the proxy appended the real one
    request = request_from("10.0.0.2", ["1.1.1.1, 198.51.100.7", "10.0.0.3"])
    assert client_ip(request, trusted) == "198.51.100.7"


def test_client_ip_ignores_forwarded_for_from_an_untrusted_peer():
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(request_from("203.0.113.9", ["198.51.100.7"]), trusted) == "203.0.113.9"


def test_client_ip_stops_at_garbage_in_the_chain():
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(request_from("10.0.0.2", ["not-an-ip"]), trusted) == "10.0.0.2"


def test_ipv6_clients_share_one_budget_per_64():
    assert rate_limit_key("2001:db8:1:2:aaaa::1") == rate_limit_key("2001:db8:1:2:bbbb::9")
    assert rate_limit_key("2001:db8:1:3::1") != rate_limit_key("2001:db8:1:2::1")
    assert rate_limit_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert rate_limit_key("198.51.100.7") == "198.51.100.7"


def test_a_bad_trusted_proxy_setting_is_one_clear_config_error(monkeypatch):
    from mailer.config import load_settings
    from mailer.errors import ConfigError

    with pytest.raises(ConfigError, match="MAILER_TRUSTED_PROXIES"):
        load_settings(trusted_proxies="10.0.0.0/8, not-a-network")
    assert load_settings(trusted_proxies="10.0.0.0/8,::1").trusted_proxies == ["10.0.0.0/8", "::1"]


def test_tokens_are_redacted_from_access_log_lines():
    import logging

    from mailer.web.security import RedactTokensFilter, redact_token_path

    assert redact_token_path("/confirm/abc.def-ghi") == "/confirm/…"
    assert redact_token_path("/unsubscribe/xyz?utm=1") == "/unsubscribe/…?utm=1"
    assert redact_token_path("/manage/12.sig/export") == "/manage/…/export"
    assert redact_token_path("/confirm/address/eyJ.abc-def") == "/confirm/address/…"
    assert redact_token_path("/subscribe") == "/subscribe"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "POST", "/confirm/SECRET", "1.1", 200), None)
    RedactTokensFilter().filter(record)
    assert "SECRET" not in record.getMessage() and "/confirm/…" in record.getMessage()
