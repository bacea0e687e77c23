"""Defences of the public web app: per-IP rate limit, body-size cap, client IP, security headers.

The rate limits (mailer.web.limiter) count in the database, so any number of `mailer serve`
processes behind the proxy share them.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.web.limiter import SlidingWindowLimiter

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- client IP -----------------------------------------------------------------------------------


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _is_trusted(address: IPAddress | None, trusted: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_ip(request: Request, trusted_proxies: tuple[IPNetwork, ...] = ()) -> str:
    """The client's IP: the socket peer, unless that peer is a trusted proxy.

    Behind trusted proxies X-Forwarded-For is read from the right, skipping the proxies
    themselves: the entries further left were written by the client and prove nothing.
    """
    peer = request.client.host if request.client else ""
    peer_ip = _parse_ip(peer)
    if not _is_trusted(peer_ip, trusted_proxies):
        return peer or "unknown"
    hops = [hop for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
    for hop in reversed(hops):
        hop_ip = _parse_ip(hop)
        if hop_ip is None:
            break  # garbage in the chain: trust nothing left of it
        if not _is_trusted(hop_ip, trusted_proxies):
            return str(hop_ip)
    return peer


def rate_limit_key(ip: str) -> str:
    """IPv6 clients usually own a whole /64, so they are limited per /64, not per address."""
    address = _parse_ip(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return ip


# -- rate limit ----------------------------------------------------------------------------------

# The one sliding-window limiter is mailer.web.limiter's SlidingWindowLimiter (re-exported here;
# the app itself counts in the database, DatabaseWindowLimiter);
# "RateLimiter" is the send's token bucket (mailer.ratelimit), a different thing.


# -- body-size cap -------------------------------------------------------------------------------


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a request body passes its cap (a 413 for the client)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class BodySizeLimitMiddleware:
    """Refuse bodies over a cap, by Content-Length up front or while streaming (chunked bodies).

    ``limit_for(path)`` picks the cap for a path, or None when the route bounds its own reading
    (the one-click unsubscribe, the SNS web hook).
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int | None],
                 too_large: ASGIApp) -> None:
        self.app = app
        self.limit_for = limit_for
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        if limit is None:  # the route reads a bounded part of the body itself
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self.too_large(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# -- security headers ----------------------------------------------------------------------------


def content_security_policy(style_hashes: Iterable[str] = ()) -> str:
    styles = " ".join(f"'{digest}'" for digest in style_hashes) or "'none'"
    return (
        "default-src 'none'; "
        f"style-src {styles}; "
        "img-src 'self' data:; "
        "form-action 'self'; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def security_headers(csp: str) -> dict[str, str]:
    return {
        "content-security-policy": csp,
        "x-frame-options": "DENY",
        # tokens travel in URLs: never hand them to another site in a Referer
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "cross-origin-opener-policy": "same-origin",
        "permissions-policy": "interest-cohort=()",
    }


class SecurityHeadersMiddleware:
    """Add the security headers to every response that does not set its own."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self.headers if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- a proxy nobody told us about ------------------------------------------------------------------


class UntrustedForwardedForWarning:
    """Log once when requests carry X-Forwarded-For but MAILER_TRUSTED_PROXIES is empty.

    Then a reverse proxy is probably in front, every visitor has the proxy's address, and one
    abuser would use up the subscribe limit for everyone.
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.warned and scope["type"] == "http" and any(
            name == b"x-forwarded-for" for name, _ in scope.get("headers", [])
        ):
            self.warned = True
            client = scope.get("client") or ("?", 0)
            self.logger.warning(
                "requests from %s carry X-Forwarded-For but MAILER_TRUSTED_PROXIES is empty: "
                "every visitor counts as the proxy's address, so one abuser can use up the "
                "subscribe limit for all. Set MAILER_TRUSTED_PROXIES to the proxy's address.",
                client[0])
        await self.app(scope, receive, send)


# -- logs --------------------------------------------------------------------------------------

# /confirm/address/<token> (a reader's new address) before /confirm/<token> (a sign-up)
_TOKEN_PATH = re.compile(r"^(/(?:confirm/address|confirm|unsubscribe|manage)/)[^/?#\s]+")


def redact_token_path(path: str) -> str:
    """``/confirm/<token>`` → ``/confirm/…``: whoever reads the logs must not get working links."""
    return _TOKEN_PATH.sub(r"\1…", path)


class RedactTokensFilter(logging.Filter):
    """Rewrites the path in uvicorn's access log lines (args: client, method, path, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_token_path(args[2]), *args[3:])
        return True


def redact_access_log(logger_name: str = "uvicorn.access") -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(existing, RedactTokensFilter) for existing in logger.filters):
        logger.addFilter(RedactTokensFilter())


def describe_limit(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit >= 1024 else f"{limit} bytes"


__all__ = [
    "BodySizeLimitMiddleware",
    "BodyTooLarge",
    "SecurityHeadersMiddleware",
    "SlidingWindowLimiter",
    "client_ip",
    "content_security_policy",
    "parse_networks",
    "redact_access_log",
    "rate_limit_key",
    "security_headers",
]
