"""A real local SMTP server (aiosmtpd) for the SMTP transport's tests.

    python -m tests.peers.smtp_server --port 0 --maildir DIR [--auth USER:PASSWORD]
        [--tls-dir DIR] [--throttle PATTERN] [--tempfail PATTERN] [--reject PATTERN]
        [--reject-data PATTERN]

The first line on stdout is ``smtp_server listening on 127.0.0.1:PORT``. Accepted messages go
into the Maildir ``--maildir``; every new connection appends one line to
``<maildir>/connections.log`` (so a test can count how many the client opened).

``--tls-dir`` makes a self-signed certificate for localhost / 127.0.0.1 there (``cert.pem``,
``key.pem``) and offers STARTTLS with it. Recipients matching ``--throttle`` get ``454
Throttling failure``, ``--tempfail`` a ``451``, ``--reject`` a ``550`` at RCPT, ``--reject-data``
a ``554`` after DATA (fnmatch patterns, repeatable); ``--lose-answer`` *queues* the message and
then hangs up instead of answering DATA (the client cannot know it was taken). ``--idle-timeout`` hangs up on a client
that has been silent that many seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import fnmatch
import ipaddress
import mailbox
import ssl
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, valid for a day; returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Handler:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.box = mailbox.Maildir(args.maildir, create=True)

    @staticmethod
    def _matches(address: str, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatch(address.lower(), p.lower()) for p in patterns)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._matches(address, self.args.throttle):
            return "454 4.7.0 Throttling failure: Maximum sending rate exceeded."
        if self._matches(address, self.args.tempfail):
            return "451 4.3.0 Temporary local problem, try again"
        if self._matches(address, self.args.reject):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(self._matches(r, self.args.reject_data) for r in envelope.rcpt_tos):
            return "554 5.6.0 Message rejected: content refused"
        self.box.add(envelope.original_content or envelope.content)
        if any(self._matches(r, self.args.lose_answer) for r in envelope.rcpt_tos):
            server.transport.abort()  # queued, but the client never hears so
        return "250 2.0.0 Ok: queued"


class CountingSMTP(SMTP):
    log_path: Path

    def connection_made(self, transport) -> None:
        with self.log_path.open("a") as log:
            log.write("connect\n")
        super().connection_made(transport)


def _authenticator(credentials: str):
    user, _, password = credentials.partition(":")

    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False)

    return check


async def run(args: argparse.Namespace) -> None:
    handler = Handler(args)
    CountingSMTP.log_path = Path(args.maildir) / "connections.log"
    tls_context = None
    if args.tls_dir:
        cert, key = make_self_signed(Path(args.tls_dir))
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cert, key)

    def factory() -> SMTP:
        return CountingSMTP(
            handler, hostname="localhost", tls_context=tls_context,
            authenticator=_authenticator(args.auth) if args.auth else None,
            auth_required=bool(args.auth), auth_require_tls=False, timeout=args.idle_timeout)

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"smtp_server listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="local SMTP server for tests")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD")
    parser.add_argument("--tls-dir", default=None)
    parser.add_argument("--idle-timeout", type=float, default=300.0,
                        help="seconds of silence after which the server hangs up")
    for option in ("--throttle", "--tempfail", "--reject", "--reject-data", "--lose-answer"):
        parser.add_argument(option, action="append", default=[], metavar="PATTERN")
    try:
        asyncio.run(run(parser.parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
