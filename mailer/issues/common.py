"""What every issue source shares: the site's address, the number in a title, a web URL check."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DEFAULT_SITE_URL = "https://this-week-in-rust.org"

_TRAILING_NUMBER_RE = re.compile(r"(\d+)\s*$")


def number_from_title(title: str) -> int | None:
    """'This Week in Rust 644' → 644: old issues carry their number only in the title."""
    match = _TRAILING_NUMBER_RE.search(title)
    return int(match.group(1)) if match else None


def is_web_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)
