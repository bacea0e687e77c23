"""The subscribe form for other sites (``GET /subscribe/embed``) and where it returns readers.

The snippet is a plain HTML form posting to ``{MAILER_BASE_URL}/subscribe``: no script, no
cookie, no CSRF token (double opt-in is the protection: nothing happens until the reader clicks
the link in their mail), so it works from any origin without CORS. After the post the reader lands
on our thank-you page, or back on the site when the form names a ``return`` URL that is on
``MAILER_ALLOWED_RETURN_URLS``. Anything else is ignored: the form is never an open redirect.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from starlette.responses import Response

from mailer.config import Settings

router = APIRouter()

RETURN_FIELD = "return"
MAX_RETURN_URL_LENGTH = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}
# whitespace, controls and backslashes: browsers and parsers disagree about what they mean
_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")


def _parts(url: str) -> SplitResult | None:
    """``url`` split, if it is an absolute http(s) URL with a plain host; None otherwise."""
    if not isinstance(url, str) or len(url) > MAX_RETURN_URL_LENGTH or _AMBIGUOUS.search(url):
        return None
    if not url.isascii():
        return None  # lookalike hosts in Unicode: an allow-list entry is plain ASCII
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if any(segment in (".", "..") for segment in parts.path.split("/")) or "%2e" in url.lower():
        return None  # /allowed/../elsewhere: a prefix match must mean a place inside the prefix
    if port is not None and port == DEFAULT_PORTS[parts.scheme.lower()]:
        port = None
    host = parts.hostname.lower().rstrip(".")
    netloc = host if port is None else f"{host}:{port}"
    if ":" in host:  # IPv6 literal
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    return SplitResult(parts.scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment)


def _within(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def allowed_return_url(candidate: object, allowed: list[str]) -> str | None:
    """``candidate`` rebuilt from its parts when it is on the allow-list, else None.

    Same scheme, host and port as an entry, and a path inside the entry's path. Relative and
    scheme-relative URLs (``//evil``), user info (``https://evil@site``), backslashes,
    whitespace, other schemes and non-ASCII hosts never match.
    """
    if not isinstance(candidate, str):
        return None
    parts = _parts(candidate.strip())
    if parts is None:
        return None
    for entry in allowed:
        allowed_parts = _parts(entry)
        if (allowed_parts is not None
                and (parts.scheme, parts.netloc) == (allowed_parts.scheme, allowed_parts.netloc)
                and _within(parts.path, allowed_parts.path)):
            return urlunsplit(parts)
    return None


def snippet(request: Request, return_url: str | None) -> str:
    """The drop-in form, sending readers back to ``return_url`` (already checked) if given."""
    settings: Settings = request.app.state.settings
    return request.app.state.pages.render(
        "embed_snippet", action=f"{settings.base_url.rstrip('/')}/subscribe",
        return_url=return_url, return_field=RETURN_FIELD).strip() + "\n"


@router.get("/subscribe/embed")
def embed(request: Request) -> Response:
    """The snippet and how to use it, for the site's editors: nothing of the configuration
    (the allow-list, setting names) is shown, that is the operator's (docs/operations.md)."""
    settings: Settings = request.app.state.settings
    wanted = request.query_params.get(RETURN_FIELD)
    return_url = allowed_return_url(wanted, settings.allowed_return_urls) if wanted else None
    return request.app.state.pages.response(
        "embed", snippet=snippet(request, return_url), base_url=settings.base_url.rstrip("/"),
        wanted=wanted, return_url=return_url)
