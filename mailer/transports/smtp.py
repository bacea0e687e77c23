"""SMTP: ``MAILER_SMTP_URL`` = ``smtp://user:pass@host:587`` or ``smtps://user:pass@host:465``.

``smtp://`` upgrades with STARTTLS whenever the server offers it (``?starttls=required`` refuses
a server that does not), ``smtps://`` is TLS from the first byte. Certificates are verified
against the system store, or against ``?cafile=/path/ca.pem`` for a private relay. A password is
never sent over a connection that is not encrypted, except to a server on this machine.

Each sending thread keeps its own connection and reuses it message after message (one TCP and
TLS handshake per thread, not per message); at most ``max_connections`` are open at once. A
connection the server dropped while idle is noticed before any of the message was sent, and
the message goes out on a fresh one. A connection lost once DATA has begun is
:class:`~mailer.errors.AnswerLost`: the server may have queued the message, so it is not resent.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from mailer.domain import OutgoingEmail, SendQuota
from mailer.errors import (
    AccountError,
    AnswerLost,
    ConfigError,
    QuotaExhausted,
    Rejected,
    TemporaryFailure,
    Throttled,
    TransportError,
)
from mailer.message import Mime, build_mime

_DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
_STARTTLS_MODES = {"auto", "required", "never"}
_IDLE_CHECK_SECONDS = 20.0  # after this long unused, a NOOP proves the connection still lives
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: str = "auto"  # auto | required | never
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Parse MAILER_SMTP_URL; a malformed one is a ConfigError that never shows the password."""
        parts = urlsplit(url.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError("MAILER_SMTP_URL: expected smtp://user:password@host:587 or "
                              f"smtps://user:password@host:465 (got scheme {parts.scheme!r})")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ConfigError("MAILER_SMTP_URL: the port is not a number") from None
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "cafile", "timeout"}
        if unknown:
            raise ConfigError(f"MAILER_SMTP_URL: unknown option(s) {', '.join(sorted(unknown))} "
                              "(known: starttls, cafile, timeout)")
        starttls = query.get("starttls", "auto")
        if starttls not in _STARTTLS_MODES:
            raise ConfigError("MAILER_SMTP_URL: starttls must be auto, required or never")
        if parts.scheme == "smtps" and "starttls" in query:
            raise ConfigError("MAILER_SMTP_URL: smtps:// is TLS already; drop ?starttls")
        try:
            timeout = float(query.get("timeout", 30))
        except ValueError:
            raise ConfigError("MAILER_SMTP_URL: timeout must be a number of seconds") from None
        return cls(
            host=parts.hostname, port=port, implicit_tls=parts.scheme == "smtps",
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            cafile=query.get("cafile"), timeout=timeout,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host.lower() in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class _LostBeforeData(Exception):
    """The connection died before any of the message was sent: safe to try a fresh one."""


class SmtpTransport:
    name = "smtp"
    notice = None

    def __init__(self, config: SmtpConfig, *, max_connections: int = 8) -> None:
        self.config = config
        self._slots = threading.BoundedSemaphore(max(1, max_connections))
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()
        self._open_lock = threading.Lock()
        self._tls = self._tls_context()

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 8) -> SmtpTransport:
        return cls(SmtpConfig.from_url(url), max_connections=max_connections)

    # -- the interface -------------------------------------------------------------------------

    def preflight(self) -> SendQuota | None:
        """Connect, secure and log in once, so a wrong host or password stops the send early."""
        with self._slots:
            self._connection()
        return None

    def send(self, message: OutgoingEmail) -> str:
        mime = build_mime(message)
        with self._slots:
            for attempt in (1, 2):
                connection = self._connection()
                try:
                    self._transaction(connection, mime)
                    return mime.message_id
                except _LostBeforeData as lost:
                    self._drop(connection)
                    if attempt == 2:
                        raise TemporaryFailure(f"SMTP {self.config.address}: connection lost "
                                               f"({lost})") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._open_lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            _quit_quietly(connection)

    # -- connections ---------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.config.cafile)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"MAILER_SMTP_URL: cannot read cafile {self.config.cafile}: "
                              f"{error}") from None

    def _connection(self) -> smtplib.SMTP:
        """This thread's connection: reused while it lives, replaced when the server dropped it."""
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if connection is not None and self._still_alive(connection):
            return connection
        if connection is not None:
            self._drop(connection)
        connection = self._connect()
        self._local.connection = connection
        self._local.used_at = time.monotonic()
        with self._open_lock:
            self._open.add(connection)
        return connection

    def _still_alive(self, connection: smtplib.SMTP) -> bool:
        if time.monotonic() - getattr(self._local, "used_at", 0.0) < _IDLE_CHECK_SECONDS:
            return True
        try:
            return connection.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def _drop(self, connection: smtplib.SMTP) -> None:
        with self._open_lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        _quit_quietly(connection)

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        try:
            connection: smtplib.SMTP
            if config.implicit_tls:
                connection = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                              context=self._tls)
            else:
                connection = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            try:
                self._secure_and_login(connection)
            except BaseException:
                _quit_quietly(connection)
                raise
        except ssl.SSLCertVerificationError as error:
            raise AccountError(f"SMTP {config.address}: TLS certificate not trusted "
                               f"({error.verify_message}); set ?cafile= for a private CA") from None
        except smtplib.SMTPAuthenticationError as error:
            raise AccountError(f"SMTP {config.address}: authentication failed for "
                               f"{config.username!r}: {error.smtp_code} "
                               f"{_text(error.smtp_error)}") from None
        except smtplib.SMTPResponseException as error:
            raise smtp_error(error.smtp_code, error.smtp_error, "connect") from None
        except (smtplib.SMTPException, OSError) as error:
            raise TemporaryFailure(f"SMTP {config.address}: cannot connect: {error}") from None
        return connection

    def _secure_and_login(self, connection: smtplib.SMTP) -> None:
        config = self.config
        connection.ehlo()
        encrypted = config.implicit_tls
        if not encrypted and config.starttls != "never" and connection.has_extn("starttls"):
            connection.starttls(context=self._tls)
            connection.ehlo()
            encrypted = True
        if not encrypted and config.starttls == "required":
            raise AccountError(f"SMTP {config.address} does not offer STARTTLS "
                               "(MAILER_SMTP_URL asks for ?starttls=required)")
        if config.username is None:
            return
        if not encrypted and not config.is_loopback:
            raise AccountError(f"SMTP {config.address}: refusing to send the password over an "
                               "unencrypted connection (the server offers no STARTTLS; use "
                               "smtps://)")
        if not connection.has_extn("auth"):
            raise AccountError(f"SMTP {config.address} offers no AUTH, but MAILER_SMTP_URL "
                               "has a user name")
        connection.login(config.username, config.password or "")

    # -- one message ---------------------------------------------------------------------------

    def _transaction(self, connection: smtplib.SMTP, mime: Mime) -> None:
        try:
            code, text = connection.mail(mime.envelope_from)
            if code != 250:
                self._reset(connection)
                raise smtp_error(code, text, "MAIL FROM")
            code, text = connection.rcpt(mime.recipient)
            if code not in (250, 251):
                self._reset(connection)
                raise smtp_error(code, text, "RCPT TO")
        except (smtplib.SMTPServerDisconnected, ConnectionError) as error:
            raise _LostBeforeData(str(error) or type(error).__name__) from None
        try:
            code, text = connection.data(mime.data)
        except smtplib.SMTPDataError as error:
            self._reset(connection)
            raise smtp_error(error.smtp_code, error.smtp_error, "DATA") from None
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            # Once DATA has begun the server may have queued the message: never resend it.
            self._drop(connection)
            raise AnswerLost(f"SMTP {self.config.address}: connection lost during DATA, "
                             f"the message may or may not have been accepted: {error}"
                             ) from None
        finally:
            self._local.used_at = time.monotonic()
        if code != 250:
            raise smtp_error(code, text, "DATA")

    def _reset(self, connection: smtplib.SMTP) -> None:
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop(connection)


def smtp_error(code: int, text: bytes | str, stage: str) -> TransportError:
    """Map an SMTP reply onto mailer's error tree, keeping the server's words."""
    words = _text(text)
    line = f"SMTP {code} at {stage}: {words}"
    lowered = words.lower()
    if "daily message quota" in lowered or "daily sending quota" in lowered:
        return QuotaExhausted(line)
    if code == 454 or "throttl" in lowered:
        return Throttled(line)
    if code in (530, 534, 535, 538):  # authentication required / failed
        return AccountError(line)
    if 400 <= code < 500:
        return TemporaryFailure(line)
    if stage in ("MAIL FROM", "connect"):
        return AccountError(line)  # the server will not take mail from us at all
    if code >= 500:
        return Rejected(line)
    return TemporaryFailure(line)


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(value.split())[:500]


def _quit_quietly(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        try:
            connection.close()
        except OSError:
            pass
