"""Slow clients (issue 9, finding 10) against the real `mailer serve`: idle connections and
trickled headers are closed; X-Forwarded-For without MAILER_TRUSTED_PROXIES is warned about once."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.peer]

TIMEOUTS = {"MAILER_HTTP_HEADER_TIMEOUT": "1", "MAILER_HTTP_KEEP_ALIVE_TIMEOUT": "1"}


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    connection = socket.create_connection((parts.hostname, parts.port), timeout=8)
    return connection


def _closed_within(connection: socket.socket, seconds: float) -> float:
    """Seconds until the server closed the connection (read gives b''); fails after ``seconds``."""
    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for over {seconds}s")
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed(web_server_factory):
    url = web_server_factory(TIMEOUTS)
    with _connect(url) as connection:
        assert _closed_within(connection, 6) < 5


def test_headers_trickled_a_byte_at_a_time_are_cut_off(web_server_factory):
    url = web_server_factory(TIMEOUTS)
    with _connect(url) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        with pytest.raises(OSError):  # reset or broken pipe once the server hung up
            while time.monotonic() - started < 8:
                connection.sendall(b"X")
                time.sleep(0.2)
                connection.setblocking(False)
                try:
                    if connection.recv(1) == b"":
                        raise ConnectionResetError("closed")
                except BlockingIOError:
                    pass
                finally:
                    connection.setblocking(True)
        assert time.monotonic() - started < 6


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(web_server_factory):
    url = web_server_factory(TIMEOUTS)
    with _connect(url) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        assert b"200 OK" in connection.recv(65536)
        assert _closed_within(connection, 4) < 3  # uvicorn's default would be 5 s


SUBSCRIBE_ANSWERED = '"GET /subscribe HTTP/1.1" 200'


def _log_once_answered(url: str, tmp_path, requests: int, limit: float = 10) -> str:
    """The server's log once it holds the access lines of ``requests`` answered GET /subscribe.
    uvicorn writes a request's access line after the request was handled, so whatever the
    handling logged (a warning, or none) is in the log by then: no guessing how long to sleep."""
    path = tmp_path / f"web-{urlsplit(url).port}.log"
    started = time.monotonic()
    while time.monotonic() - started < limit:
        log = path.read_text()
        if log.count(SUBSCRIBE_ANSWERED) >= requests:
            return log
        time.sleep(0.05)
    pytest.fail(f"the log did not show {requests} answered requests within {limit}s:\n{log}")


def test_forwarded_for_without_trusted_proxies_is_warned_about_once(web_server_factory, tmp_path):
    url = web_server_factory()
    for n in range(3):
        response = httpx.get(f"{url}/subscribe", headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert response.status_code == 200
    log = _log_once_answered(url, tmp_path, 3)
    assert log.count("MAILER_TRUSTED_PROXIES is empty") == 1, log


def test_no_warning_when_the_proxy_is_trusted(web_server_factory, tmp_path):
    url = web_server_factory({"MAILER_TRUSTED_PROXIES": "127.0.0.1"})
    response = httpx.get(f"{url}/subscribe", headers={"X-Forwarded-For": "203.0.113.1"})
    assert response.status_code == 200
    log = _log_once_answered(url, tmp_path, 1)
    assert "MAILER_TRUSTED_PROXIES is empty" not in log, log


BODY_ROUTES = ["/webhooks/ses", "/subscribe", "/unsubscribe/some-token"]


def _post_head(path: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            f"\r\nContent-Length: {length}\r\n\r\n").encode()


def _trickle_until_answered(connection: socket.socket, limit: float) -> bytes:
    """Send one body byte every 0.2 s until the server answers; fails after ``limit`` seconds."""
    started = time.monotonic()
    connection.setblocking(False)
    answer = b""
    while time.monotonic() - started < limit:
        try:
            chunk = connection.recv(65536)
            if not chunk:
                return answer
            answer += chunk
            if b"\r\n\r\n" in answer:
                return answer
        except BlockingIOError:
            pass
        try:
            connection.send(b"a")
        except OSError:
            return answer
        time.sleep(0.2)
    pytest.fail(f"the server still read the trickled body after {limit}s")


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_trickled_a_byte_at_a_time_is_answered_408(web_server_factory, path):
    """Issue 19 item 14d: headers on time, then the body a byte at a time (slowloris), would
    hold a worker for as long as the client liked without the proxy in front."""
    url = web_server_factory({**TIMEOUTS, "MAILER_HTTP_BODY_TIMEOUT": "1"})
    with _connect(url) as connection:
        connection.sendall(_post_head(path, 10_000))
        answer = _trickle_until_answered(connection, 8)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_client_hanging_up_mid_body_is_one_log_line(web_server_factory, tmp_path, path):
    """Issue 19 item 14c: a disconnect is the client's doing, not a bug: no traceback."""
    url = web_server_factory(TIMEOUTS)
    for _ in range(2):
        with _connect(url) as connection:
            connection.sendall(_post_head(path, 10_000) + b"email=a")
            time.sleep(0.3)
    time.sleep(0.5)
    assert httpx.get(f"{url}/healthz").status_code == 200
    log = (tmp_path / f"web-{urlsplit(url).port}.log").read_text()
    assert "Traceback" not in log, log
    assert log.count("hung up") == 2, log
