"""Where the network sources may connect, and for how long (issue 19).

An issue source fetches what a feed or a PDS points it at, so a hostile or hijacked site could
aim it at the machine's own network (a cloud metadata service, an admin page) and have the page
mailed to every reader. So each fetch stays on the configured site (:class:`Site`), and every
connection goes to an address checked *after* resolving the name, at connect time: the socket
is opened to the very IP that was checked (the TLS name and Host header stay the site's), so a
name that resolves differently the second time (DNS rebinding) gains nothing.

A server may also trickle an answer a byte at a time, each read well within the timeout; every
read and write here is held to one deadline for the whole fetch.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import typing
from urllib.parse import urlsplit

import httpcore

ALLOW_PRIVATE_HINT = "set MAILER_SOURCE_ALLOW_PRIVATE=1 to fetch from this network"
DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedAddress(Exception):
    """A name that resolves only to addresses an issue source must not connect to."""


class DeadlineExceeded(Exception):
    """The whole fetch took longer than its deadline."""


def address_problem(ip: str) -> str | None:
    """Why an issue source must not connect to ``ip`` ("a loopback address"), or None."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved or not address.is_global:
        return "not a public address"
    return None


def checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to that may be connected to, first choice first."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if allow_private:
        return addresses
    allowed = [ip for ip in addresses if address_problem(ip) is None]
    if not allowed:
        raise RefusedAddress(describe_refusal(host, addresses[0]))
    return allowed


def describe_refusal(host: str, ip: str) -> str:
    problem = address_problem(ip)
    if host.strip("[]") == ip:
        return f"{ip} is {problem}; {ALLOW_PRIVATE_HINT}"
    return f"{host} resolves to {ip}, {problem}; {ALLOW_PRIVATE_HINT}"


def check_host_by_name(host: str, allow_private: bool) -> None:
    """For a program that connects by itself (git): refuse a name that resolves only to
    addresses mailer would not connect to. Checked by name, so not proof against rebinding."""
    checked_addresses(host, 0, allow_private)


class Site:
    """The one site a fetch may visit: the configured URL's host and port (an http:// site may
    redirect to its own https://)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = (parts.hostname or "").lower()
        self.origins = {(parts.scheme, self.host, _port(parts))}
        if parts.scheme == "http" and _port(parts) == 80:
            self.origins.add(("https", self.host, 443))

    def holds(self, url: str) -> bool:
        parts = urlsplit(url)
        try:
            return (parts.scheme, (parts.hostname or "").lower(), _port(parts)) in self.origins
        except ValueError:  # a port that is not a number
            return False


def _port(parts) -> int | None:
    return parts.port or DEFAULT_PORTS.get(parts.scheme)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.ends = seconds, time.monotonic() + seconds

    def clamp(self, timeout: float | None) -> float:
        """The time one read or write may take: its own timeout, but never past the deadline."""
        left = self.ends - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded
        return left if timeout is None else min(timeout, left)

    def passed(self) -> bool:
        return time.monotonic() >= self.ends


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, opened only to checked addresses, every step within a deadline."""

    def __init__(self, allow_private: bool, deadline: Deadline) -> None:
        self.allow_private, self.deadline = allow_private, deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for ip in checked_addresses(host, port, self.allow_private):
            try:
                stream = self._sockets.connect_tcp(ip, port, self.deadline.clamp(timeout), local_address,
                                                   socket_options)
            except httpcore.ConnectError as error:
                last = error  # the next address of the name may answer
                continue
            except httpcore.TimeoutException:
                raise self._late() from None
            return DeadlineStream(stream, self.deadline)
        raise last or httpcore.ConnectError(f"{host} has no address")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        raise RefusedAddress("issue sources do not connect to local sockets")

    def _late(self) -> Exception:
        return DeadlineExceeded() if self.deadline.passed() else httpcore.ConnectTimeout("timed out")


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._within(lambda: self._stream.read(max_bytes, self._deadline.clamp(timeout)))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._within(lambda: self._stream.write(buffer, self._deadline.clamp(timeout)))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        secure = self._within(lambda: self._stream.start_tls(ssl_context, server_hostname,
                                                             self._deadline.clamp(timeout)))
        return DeadlineStream(secure, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)

    def _within(self, step: typing.Callable[[], typing.Any]) -> typing.Any:
        try:
            return step()
        except httpcore.TimeoutException:
            if self._deadline.passed():
                raise DeadlineExceeded from None
            raise
