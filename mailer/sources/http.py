"""Polite HTTP GETs for the issue sources: a deadline, a User-Agent, retries with backoff, and a
disk cache revalidated with ETag / If-Modified-Since, so an hourly cron mostly gets 304s.

And guarded ones (issue 19, see :mod:`mailer.sources.guard`): a fetch stays on the configured
site, follows at most five redirects within it, connects only to public addresses (unless
allowed), reads at most ``max_bytes`` and ends within ``timeout`` seconds in all.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpcore
import httpx

from mailer import __version__
from mailer.errors import SourceError
from mailer.ratelimit import backoff_delay
from mailer.sources.guard import Deadline, DeadlineExceeded, GuardedBackend, RefusedAddress, Site

MAX_BODY_BYTES = 10 * 1024 * 1024  # a feed, a page or a page of records; anything bigger is wrong
MAX_RETRY_AFTER = 60.0  # seconds: a server asking for longer gets the next cron run instead
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 20.0  # seconds for one try in all: connecting, redirects, headers and body
    tries: int = 3
    backoff: float = 1.0  # seconds before the second try; doubles after each failure
    user_agent: str = f"mailer/{__version__} (This Week in Rust newsletter delivery)"
    allow_private: bool = False  # MAILER_SOURCE_ALLOW_PRIVATE: loopback, private, link-local too
    max_bytes: int = MAX_BODY_BYTES


class _Refused(Exception):
    """A fetch that must not happen: no retry can change the answer."""


class Fetcher:
    """GET with a conditional-request cache under ``cache_dir/http``, only from ``site``'s
    host and port (the first URL fetched, when not given)."""

    def __init__(self, source: str, cache_dir: Path, policy: FetchPolicy, site: str | None = None) -> None:
        self.source = source  # "feed", "atproto": named in every error line
        self.cache_dir = Path(cache_dir) / "http"
        self.policy = policy
        self.site = Site(site) if site else None
        self.network_fetches = 0  # 200 answers; 304s cost nothing to parse

    def get(self, url: str) -> bytes:
        site = self.site = self.site or Site(url)
        if not site.holds(url):
            raise SourceError(f"issue source {self.source}: {url} is not on the configured site "
                              f"({self.site.host}); issue sources fetch only from it")
        cached = self._cached(url)
        headers = {"User-Agent": self.policy.user_agent}
        if cached and cached.get("etag"):
            headers["If-None-Match"] = cached["etag"]
        if cached and cached.get("last_modified"):
            headers["If-Modified-Since"] = cached["last_modified"]
        response = self._get_with_retries(url, headers)
        if response.status_code == 304 and cached:
            return self._body_path(url).read_bytes()
        if response.status_code != 200:
            raise SourceError(f"issue source {self.source}: {url} answered HTTP {response.status_code}")
        self.network_fetches += 1
        self._store(url, response)
        return response.content

    def _get_with_retries(self, url: str, headers: dict[str, str]) -> httpx.Response:
        problem, retry_after = "no answer", 0.0
        for attempt in range(1, self.policy.tries + 1):
            try:
                response = _guarded_get(url, headers, self.policy, self._site(url))
            except (httpx.HTTPError, httpcore.ConnectError) as error:
                problem = _describe(error)
            except DeadlineExceeded:
                problem = f"no complete answer within {self.policy.timeout:g} s"
            except _Refused as refusal:
                raise SourceError(f"issue source {self.source}: {url} {refusal}") from None
            except RefusedAddress as refusal:
                raise SourceError(f"issue source {self.source}: {url}: {refusal}") from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
            if attempt < self.policy.tries:
                time.sleep(min(max(retry_after, self._backoff(attempt)), MAX_RETRY_AFTER))
        raise SourceError(f"issue source {self.source}: cannot fetch {url}: {problem} "
                          f"({self.policy.tries} tr{'ies' if self.policy.tries > 1 else 'y'})")

    def _site(self, url: str) -> Site:
        """The one site this fetcher may reach: the configured one, or the first URL's."""
        if self.site is None:
            self.site = Site(url)
        return self.site

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.policy.backoff, cap=MAX_RETRY_AFTER)

    # -- the cache: <sha256>.json (validators) beside <sha256>.body ----------------------------

    def _key(self, url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()

    def _body_path(self, url: str) -> Path:
        return self.cache_dir / f"{self._key(url)}.body"

    def _cached(self, url: str) -> dict | None:
        meta = self.cache_dir / f"{self._key(url)}.json"
        if not meta.is_file() or not self._body_path(url).is_file():
            return None
        try:
            return json.loads(meta.read_text())
        except (OSError, ValueError):
            return None

    def _store(self, url: str, response: httpx.Response) -> None:
        validators = {"url": url, "etag": response.headers.get("etag"),
                      "last_modified": response.headers.get("last-modified")}
        if not (validators["etag"] or validators["last_modified"]):
            return  # nothing to revalidate with: caching the body would not save a fetch
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            _write_atomically(self._body_path(url), response.content)
            _write_atomically(self.cache_dir / f"{self._key(url)}.json", json.dumps(validators).encode())
        except OSError as error:
            raise SourceError(f"issue source {self.source}: cannot write the cache in "
                              f"{self.cache_dir}: {error.strerror or error}") from None


def _guarded_get(url: str, headers: dict[str, str], policy: FetchPolicy, site: Site) -> httpx.Response:
    """One try: GET ``url``, following redirects that stay on ``site``, within one deadline."""
    deadline = Deadline(policy.timeout)
    with _guarded_client(policy, deadline) as client:
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream("GET", url, headers=headers) as response:
                if not response.has_redirect_location:
                    return _read_bounded(response, policy.max_bytes)
                target = urljoin(url, response.headers["location"])
            if not site.holds(target):
                raise _Refused(f"redirects to {target}, which is not on the configured site ({site.host})")
            url = target
        raise _Refused(f"makes more than {MAX_REDIRECTS} redirects")


def _guarded_client(policy: FetchPolicy, deadline: Deadline) -> httpx.Client:
    transport = httpx.HTTPTransport()
    # httpx offers no public hook for the network backend; the pool it would build is replaced
    # by one whose sockets go only to checked addresses and keep to the deadline.
    transport._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                              network_backend=GuardedBackend(policy.allow_private, deadline))
    # trust_env=False: a proxy from the environment would connect in our place, unchecked.
    return httpx.Client(transport=transport, timeout=policy.timeout, trust_env=False)


def _read_bounded(response: httpx.Response, max_bytes: int) -> httpx.Response:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _Refused(f"is larger than {max_bytes:,} bytes")
        chunks.append(chunk)
    return httpx.Response(response.status_code, headers=response.headers, content=b"".join(chunks),
                          request=response.request)


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


def _describe(error: Exception) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, (httpx.ConnectError, httpcore.ConnectError)):
        said = str(error)  # the guard's own words when the name did not resolve; TLS's
        if said.startswith("cannot resolve") or "certificate" in said.lower() or "ssl" in said.lower():
            return said
        return "connection refused or host unreachable"
    return str(error) or type(error).__name__


def _write_atomically(path: Path, data: bytes) -> None:
    # A run killed mid-write must not leave a half body that a later 304 would trust.
    temporary = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
