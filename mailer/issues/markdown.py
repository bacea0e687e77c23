"""TWiR Markdown, the main input: Pelican ``Key: value`` header lines, a blank line, then
Python-Markdown text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from mailer.domain import Issue
from mailer.errors import MalformedIssue
from mailer.issues.common import DEFAULT_SITE_URL, number_from_title

HEADER_RE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(?P<value>.*)$")
_CONTINUATION_RE = re.compile(r"^ {4,}(?P<value>\S.*)$")
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class _Header:
    fields: dict[str, str]
    lines: dict[str, int]  # key -> 1-based line, for error messages
    body_start: int  # index of the first body line
    source: str

    def get(self, key: str) -> str | None:
        return self.fields.get(key)

    @property
    def number(self) -> int | None:
        raw = self.get("number")
        if raw is not None:
            if not raw.isascii() or not raw.isdigit():
                raise MalformedIssue(f"{self.source} line {self.lines['number']}: Number {raw!r} is not a whole number")
            return int(raw)
        title = self.get("title")
        if title:
            return number_from_title(title)
        return None


def parse_markdown_issue(text: str, *, source_path: Path | None = None, site_url: str = DEFAULT_SITE_URL) -> Issue:
    """A TWiR issue: Pelican ``Key: value`` headers, a blank line, then Markdown."""
    source = str(source_path) if source_path else "the issue"
    if not text.strip():
        raise MalformedIssue(f"{source} is empty: an issue starts with 'Title: This Week in Rust N'")
    lines = text.lstrip("\ufeff").splitlines()
    header = parse_header_lines(lines, source_path)
    title = header.get("title")
    if not title:
        raise MalformedIssue(f"{source}: no 'Title:' header line (an issue starts with 'Title: This Week in Rust N')")
    number = header.number
    issue_date, published_at = _parse_header_date(header, source)
    body = "\n".join(lines[header.body_start :]).strip("\n") + "\n"
    return Issue(
        title=title,
        body=body,
        body_format="markdown",
        number=number,
        date=issue_date,
        published_at=published_at,
        category=header.get("category") or None,
        tags=_split_tags(header.get("tags")),
        web_url=_pelican_url(site_url, issue_date, header.get("slug") or pelican_slugify(title)),
        source_path=source_path,
        source_kind="markdown",
        preview=_preview(header),
    )


def _preview(header: _Header) -> str | None:
    """The editor's inbox preview line, from ``Preheader:`` or ``Preview:``; None when unset."""
    value = header.get("preheader") or header.get("preview") or ""
    return " ".join(value.split()) or None


def parse_header_lines(lines, source_path: Path | None) -> _Header:
    """Pelican/Python-Markdown ``meta``: ``Key: value`` lines (4-space continuations) up to a blank line.

    Like Python-Markdown, the first line that is neither ends the header and starts the body.
    """
    source = str(source_path) if source_path else "the issue"
    fields: dict[str, str] = {}
    line_numbers: dict[str, int] = {}
    last_key: str | None = None
    index = 0
    for index, line in enumerate(lines):
        if not line.strip():
            return _Header(fields, line_numbers, index + 1, source)
        match = HEADER_RE.match(line)
        continuation = _CONTINUATION_RE.match(line)
        if continuation and last_key:
            fields[last_key] = f"{fields[last_key]} {continuation['value'].strip()}".strip()
            continue
        if not match:
            return _Header(fields, line_numbers, index, source)
        last_key = match["key"].lower()
        fields[last_key] = match["value"].strip()
        line_numbers[last_key] = index + 1
    return _Header(fields, line_numbers, index + 1, source)


def _parse_header_date(header: _Header, source: str) -> tuple[date | None, datetime | None]:
    raw = header.get("date")
    if not raw:
        return None, None
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        # Pelican headers carry no zone; TWiR's dates are calendar dates, so a time is taken as UTC.
        has_time = fmt != "%Y-%m-%d"
        return parsed.date(), parsed.replace(tzinfo=UTC) if has_time else None
    raise MalformedIssue(
        f"{source} line {header.lines['date']}: Date {raw!r} is not a date (write YYYY-MM-DD or YYYY-MM-DD HH:MM)"
    )


def _split_tags(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(tag.strip() for tag in raw.split(",") if tag.strip())


def pelican_slugify(value: str) -> str:
    """Pelican's default slugify: ASCII-fold, drop punctuation, lower-case, join words with '-'."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^\w\s-]", "", folded).strip().lower()
    return re.sub(r"[-\s]+", "-", cleaned)


def _pelican_url(site_url: str, issue_date: date | None, slug: str) -> str | None:
    """TWiR's ARTICLE_URL: ``blog/{date:%Y}/{date:%m}/{date:%d}/{slug}/``."""
    if issue_date is None or not slug:
        return None
    return f"{site_url.rstrip('/')}/blog/{issue_date:%Y/%m/%d}/{slug}/"
