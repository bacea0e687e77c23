"""The web hook's fetch of the SNS signing certificate, against a real local HTTP server.

`fetch_https` is the app's real fetcher; only the host is swapped for a local server (SNS's own
hosts are out of reach here), so the size cap, the answer's status, a dropped connection and a
closed port are met exactly as in production, and the web hook's answer to each is checked.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from mailer.domain import SubscriberStatus
from mailer.errors import WebhookRejected
from mailer.events.sns import CertificateCache
from mailer.web.app import create_app
from mailer.web.webhook import MAX_CERT_BYTES, SnsUnreachable, fetch_https
from tests.plugins.processes import free_port
from tests.event_support import post, reader_status, ses_payload, snapshot


class CertServer:
    """Answers by path: /good.pem the certificate, /huge.pem one byte over the cap (streamed,
    no Content-Length), /limit.pem exactly the cap, /gone.pem 404, /busy.pem 503, /cut.pem
    a promised body that never comes (the connection closes)."""

    def __init__(self, certificate: bytes) -> None:
        self.certificate = certificate
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1].rsplit("-", 1)[-1]
                if name == "good.pem":
                    self._answer(200, server.certificate)
                elif name == "limit.pem":
                    self._answer(200, b"x" * MAX_CERT_BYTES)
                elif name == "huge.pem":
                    self._chunked(b"x" * (MAX_CERT_BYTES + 1))
                elif name == "busy.pem":
                    self._answer(503, b"slow down")
                elif name == "cut.pem":
                    self.send_response(200)
                    self.send_header("Content-Length", "5000")
                    self.end_headers()
                    self.wfile.write(b"-----BEGIN CERT")
                    self.close_connection = True
                else:
                    self._answer(404, b"no such key")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _chunked(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(body), 8192):
                    piece = body[start:start + 8192]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def local(self, sns_url: str) -> str:
        """The same file on this server instead of sns.<region>.amazonaws.com."""
        return self.url + urlsplit(sns_url).path


@pytest.fixture
def cert_server(sns_signer) -> Iterator[CertServer]:
    server = CertServer(sns_signer.certificate_pem)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


# -- fetch_https itself -----------------------------------------------------------------------

def test_a_certificate_up_to_the_cap_is_fetched(cert_server, sns_signer):
    assert fetch_https(f"{cert_server.url}/good.pem") == sns_signer.certificate_pem
    assert len(fetch_https(f"{cert_server.url}/limit.pem")) == MAX_CERT_BYTES


def test_an_answer_over_the_cap_is_refused_while_streaming(cert_server):
    with pytest.raises(WebhookRejected, match="too large") as refused:
        fetch_https(f"{cert_server.url}/huge.pem")
    assert refused.value.status_code == 403


def test_a_missing_certificate_is_refused(cert_server):
    with pytest.raises(WebhookRejected, match="SNS answered 404") as refused:
        fetch_https(f"{cert_server.url}/gone.pem")
    assert refused.value.status_code == 403


def test_a_server_error_from_sns_is_worth_a_retry(cert_server):
    # SNS's host failing for a moment is no reason to refuse the message for good
    with pytest.raises(SnsUnreachable, match="503"):
        fetch_https(f"{cert_server.url}/busy.pem")


def test_a_connection_dropped_mid_answer_is_worth_a_retry(cert_server):
    with pytest.raises(SnsUnreachable):
        fetch_https(f"{cert_server.url}/cut.pem")


def test_a_closed_port_is_worth_a_retry():
    with pytest.raises(SnsUnreachable, match="cannot reach"):
        fetch_https(f"http://127.0.0.1:{free_port()}/good.pem")


# -- what the web hook answers SNS ------------------------------------------------------------

@contextlib.contextmanager
def hook_fetching_from(server_url: str | None, cert_server: CertServer | None,
                       settings) -> Iterator[TestClient]:
    """The app with its real certificate cache and fetch_https, pointed at a local host."""
    app = create_app(settings)

    def fetch(url: str) -> bytes:
        local = cert_server.local(url) if cert_server else server_url + urlsplit(url).path
        return fetch_https(local)

    app.state.sns_cert_fetcher = CertificateCache(fetch)
    with TestClient(app) as client:
        yield client


CASES = {
    # cert file name → what the web hook answers (403: refused for good; 503: SNS retries)
    "good.pem": 200,
    "huge.pem": 403,
    "gone.pem": 403,
    "busy.pem": 503,
    "cut.pem": 503,
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_web_hook_answer_for_each_certificate_fetch(cert_server, sns_signer, hook_settings,
                                                        reader, name):
    cert_url = f"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-{name}"
    before = snapshot(hook_settings)
    with hook_fetching_from(None, cert_server, hook_settings) as client:
        reply = post(client, sns_signer.notification(ses_payload(), cert_url=cert_url))
    assert reply.status_code == CASES[name], reply.text
    assert cert_server.requests == [f"/SimpleNotificationService-{name}"]
    if CASES[name] == 200:
        assert reader_status(hook_settings) is SubscriberStatus.BOUNCED
    else:
        assert snapshot(hook_settings) == before
        assert reader_status(hook_settings) is SubscriberStatus.ACTIVE


def test_a_failed_fetch_is_not_cached_and_a_retry_succeeds(cert_server, sns_signer,
                                                           hook_settings, reader):
    cert_url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-good.pem"
    envelope = sns_signer.notification(ses_payload(), cert_url=cert_url)
    with socket.socket() as parked:  # a port with nothing listening: the network is down
        parked.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{parked.getsockname()[1]}"
        with hook_fetching_from(down, None, hook_settings) as client:
            assert post(client, envelope).status_code == 503
    assert reader_status(hook_settings) is SubscriberStatus.ACTIVE
    with hook_fetching_from(None, cert_server, hook_settings) as client:
        assert post(client, envelope).status_code == 200  # SNS's retry of the same message
    assert reader_status(hook_settings) is SubscriberStatus.BOUNCED
