"""The SMTP transport against a real local SMTP server process (aiosmtpd, tests/peers/)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailer.domain import OutgoingEmail
from mailer.errors import AccountError, AnswerLost, ConfigError, Rejected, TemporaryFailure, Throttled
from mailer.transports import get_transport
from mailer.transports.smtp import SmtpConfig, SmtpTransport
from tests.smtp_peer import smtp_server

pytest.importorskip("aiosmtpd")
pytestmark = pytest.mark.peer


def message(n: int = 1, **changes) -> OutgoingEmail:
    fields = dict(to=f"reader{n}@example.com", sender="TWiR <newsletter@example.org>",
                  subject="This Week in Rust 644 — ✨", html=f"<p>Hello {n} — é</p>",
                  text=f"Hello {n}\n.\n..leading dots survive\n",
                  headers={"List-Unsubscribe": f"<https://twir.example.org/u/tok{n}>",
                           "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    fields.update(changes)
    return OutgoingEmail(**fields)


def test_messages_arrive_whole_over_one_reused_connection(tmp_path):
    with smtp_server(tmp_path) as peer:
        transport = SmtpTransport.from_url(peer.url())
        ids = [transport.send(message(n)) for n in range(5)]
        transport.close()
        received = sorted(peer.messages(), key=lambda m: m["To"])
        assert peer.connections() == 1
    assert sorted(m["Message-ID"] for m in received) == sorted(ids)
    first = received[0]
    assert first["To"] == "reader0@example.com"
    assert first["List-Unsubscribe"] == "<https://twir.example.org/u/tok0>"
    text = first.get_payload()[0].get_payload(decode=True).decode()
    assert "Hello 0\n.\n..leading dots survive" in text.replace("\r\n", "\n")  # dot-stuffing undone


def test_threads_each_reuse_their_own_connection(tmp_path):
    with smtp_server(tmp_path) as peer:
        transport = SmtpTransport.from_url(peer.url(), max_connections=4)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: transport.send(message(n)), range(40)))
        transport.close()
        assert len(peer.messages()) == 40
        assert 1 <= peer.connections() <= 4


def test_a_connection_the_server_dropped_is_replaced_without_losing_the_message(tmp_path):
    with smtp_server(tmp_path, "--idle-timeout", "0.5") as peer:
        transport = SmtpTransport.from_url(peer.url())
        transport.send(message(1))
        time.sleep(1.5)  # the server hangs up on the idle connection meanwhile
        transport.send(message(2))
        transport.close()
        assert len(peer.messages()) == 2
        assert peer.connections() == 2


def test_454_is_throttled_and_the_connection_goes_on(tmp_path):
    with smtp_server(tmp_path, "--throttle", "slow*@example.com") as peer:
        transport = SmtpTransport.from_url(peer.url())
        with pytest.raises(Throttled, match="454 at RCPT TO: 4.7.0 Throttling failure"):
            transport.send(message(to="slow@example.com"))
        transport.send(message(2))
        transport.close()
        assert [m["To"] for m in peer.messages()] == ["reader2@example.com"]
        assert peer.connections() == 1


def test_4xx_is_temporary_and_5xx_rejects_only_that_recipient(tmp_path):
    with smtp_server(tmp_path, "--tempfail", "busy@*", "--reject", "gone@*",
                     "--reject-data", "spam@*") as peer:
        transport = SmtpTransport.from_url(peer.url())
        with pytest.raises(TemporaryFailure, match="451 at RCPT TO"):
            transport.send(message(to="busy@example.com"))
        with pytest.raises(Rejected, match="550 at RCPT TO: 5.1.1 <gone@example.com>"):
            transport.send(message(to="gone@example.com"))
        with pytest.raises(Rejected, match="554 at DATA"):
            transport.send(message(to="spam@example.com"))
        transport.send(message(4))
        transport.close()
        assert [m["To"] for m in peer.messages()] == ["reader4@example.com"]


def test_auth_with_the_right_password_sends(tmp_path):
    with smtp_server(tmp_path, "--auth", "twir:s3cret") as peer:
        transport = SmtpTransport.from_url(peer.url(user="twir:s3cret"))
        assert transport.preflight() is None
        transport.send(message())
        transport.close()
        assert len(peer.messages()) == 1


def test_a_wrong_password_is_an_account_error_before_sending(tmp_path):
    with smtp_server(tmp_path, "--auth", "twir:s3cret") as peer:
        transport = SmtpTransport.from_url(peer.url(user="twir:wrong"))
        with pytest.raises(AccountError, match="authentication failed for 'twir': 535"):
            transport.preflight()
        assert peer.messages() == []


def test_starttls_with_a_private_ca(tmp_path):
    with smtp_server(tmp_path, "--auth", "twir:s3cret", tls=True) as peer:
        cafile = peer.tls_dir / "cert.pem"
        transport = SmtpTransport.from_url(
            peer.url(user="twir:s3cret", query=f"?starttls=required&cafile={cafile}"))
        transport.send(message())
        assert transport._local.connection.sock.version().startswith("TLS")
        transport.close()
        assert len(peer.messages()) == 1


def test_an_untrusted_certificate_stops_the_send(tmp_path):
    with smtp_server(tmp_path, tls=True) as peer:
        transport = SmtpTransport.from_url(peer.url())  # system CAs do not know this one
        with pytest.raises(AccountError, match="TLS certificate not trusted"):
            transport.preflight()


def test_starttls_required_but_not_offered(tmp_path):
    with smtp_server(tmp_path) as peer:
        transport = SmtpTransport.from_url(peer.url(query="?starttls=required"))
        with pytest.raises(AccountError, match="does not offer STARTTLS"):
            transport.preflight()


def test_nothing_listening_is_a_temporary_failure(tmp_path):
    from tests.plugins.processes import free_port

    transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(TemporaryFailure, match="cannot connect"):
        transport.send(message())


@pytest.mark.parametrize(("url", "complaint"), [
    ("http://mail.example.org", "expected smtp://"),
    ("smtp://", "expected smtp://"),
    ("smtp://u:p@mail.example.org:notaport", "port is not a number"),
    ("smtp://mail.example.org?starttls=maybe", "starttls must be"),
    ("smtp://mail.example.org?verify=no", "unknown option"),
    ("smtps://mail.example.org?starttls=required", "TLS already"),
])
def test_malformed_urls_are_one_config_error_without_the_password(url, complaint):
    with pytest.raises(ConfigError, match=complaint) as caught:
        SmtpConfig.from_url(url)
    assert "MAILER_SMTP_URL" in str(caught.value)
    assert ":p@" not in str(caught.value)


def test_url_defaults_and_escaped_credentials():
    config = SmtpConfig.from_url("smtps://user%40example.org:p%3Ass@mail.example.org")
    assert (config.host, config.port, config.implicit_tls) == ("mail.example.org", 465, True)
    assert (config.username, config.password) == ("user@example.org", "p:ss")
    assert SmtpConfig.from_url("smtp://mail.example.org").port == 587


def test_get_transport_needs_an_smtp_url(settings, monkeypatch):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_TRANSPORT", "smtp")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="MAILER_SMTP_URL is required"):
        get_transport(get_settings())


def test_a_connection_lost_after_data_is_an_answer_lost_and_never_resent(tmp_path):
    with smtp_server(tmp_path, "--lose-answer", "lost@*") as peer:
        transport = SmtpTransport.from_url(peer.url())
        with pytest.raises(AnswerLost, match="may or may not have been accepted"):
            transport.send(message(to="lost@example.com"))
        assert len(peer.messages()) == 1  # the server had queued it: one copy, not two
        transport.send(message(2))  # a fresh connection for the next reader
        assert len(peer.messages()) == 2
        transport.close()
