"""A ``site.standard.document`` record (AT Protocol / standard.site JSON): plain text whose link
targets were stripped, Markdown-like in shape."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

from mailer.domain import Issue
from mailer.errors import MalformedIssue
from mailer.issues.common import is_web_url, number_from_title

STANDARD_DOCUMENT_TYPE = "site.standard.document"

_PATH_DATE_RE = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/")


def parse_standard_site(record: dict | str, *, source_path: Path | None = None) -> Issue:
    """A ``site.standard.document`` record: title, publishedAt, site + path, textContent."""
    source = str(source_path) if source_path else "the standard.site record"
    data = _record_dict(record, source)
    title = _required_text(data, "title", source)
    text = _required_text(data, "textContent", source)
    published_at = _parse_published_at(data.get("publishedAt"), source)
    web_url = _record_web_url(data.get("site"), data.get("path"))
    tags = data.get("tags") if isinstance(data.get("tags"), list) else []
    return Issue(
        title=title.strip(),
        body=normalize_standard_text(text),
        body_format="markdown",
        number=number_from_title(title),
        date=_record_date(data.get("path"), published_at),
        published_at=published_at,
        # The publisher fills `tags` with the category followed by every link text of the page,
        # so only the first entry says anything about the issue as a whole.
        category=tags[0] if tags and isinstance(tags[0], str) else None,
        tags=(),
        web_url=web_url,
        source_path=source_path,
        source_kind="standard-site",
        links_stripped=True,
    )


def _record_dict(given: dict | str, source: str) -> dict:
    record: object = given
    if isinstance(given, str):
        try:
            record = json.loads(given)
        except json.JSONDecodeError as exc:
            raise MalformedIssue(f"{source} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(record, dict):
        raise MalformedIssue(f"{source} is not a JSON object (a site.standard.document record is one)")
    document: dict = record
    # com.atproto.repo.getRecord wraps the record: {"uri": ..., "cid": ..., "value": {...}}
    if "$type" not in document and isinstance(document.get("value"), dict):
        document = document["value"]
    record_type = document.get("$type")
    if record_type is not None and record_type != STANDARD_DOCUMENT_TYPE:
        raise MalformedIssue(f"{source} is a {record_type!r} record, not a {STANDARD_DOCUMENT_TYPE}")
    return document


def _required_text(data: dict, key: str, source: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedIssue(f"{source} has no {key!r} (a site.standard.document needs a non-empty {key})")
    return value


def _parse_published_at(raw, source: str) -> datetime | None:
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise MalformedIssue(f"{source}: publishedAt {raw!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _record_web_url(site, path) -> str | None:
    if not isinstance(site, str) or not is_web_url(site):
        return None  # an at:// publication reference or nothing: no web address we can link
    if not isinstance(path, str) or not path:
        return site
    return f"{site.rstrip('/')}/{path.lstrip('/')}"


def _record_date(path, published_at: datetime | None) -> date | None:
    # The path carries the issue's calendar date; publishedAt is a UTC instant that can fall on
    # the neighbouring day.
    if isinstance(path, str) and (match := _PATH_DATE_RE.search(path)):
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    return published_at.date() if published_at else None


_CODE_SPAN_RE = re.compile(r"(`[^`\n]+`)")
_TABLE_DELIMITER_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_HEADING_RE = re.compile(r"^#{1,6}\s")
_LIST_ITEM_RE = re.compile(r"^(?P<indent> *)(?:[*+-]|\d+\.)\s")


def normalize_standard_text(text: str) -> str:
    """Make a standard.site ``textContent`` render as the article it came from.

    The text is plain (no HTML), only Markdown-shaped: ``<`` in it is a literal, not a tag; a
    line starting ``#123`` is an issue number, not a heading; table cells that held ``<br />``
    were split over two lines; and some publishers flatten paragraph breaks to single newlines.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_escape_plain_line(line) for line in text.split("\n")]
    lines = _rejoin_split_table_rows(lines)
    if "" not in lines:
        lines = _restore_paragraph_breaks(lines)
    lines = _space_headings(lines)
    body = "\n".join(line.rstrip() for line in lines)
    body = re.sub(r"\n{3,}", "\n\n", body)
    body = re.sub(r"(\*\*[^*\n]+\*\*) ([:;,.!?])", r"\1\2", body)  # "**Summary** :"
    return body.strip("\n") + "\n"


def _escape_plain_line(line: str) -> str:
    parts = _CODE_SPAN_RE.split(line)
    for i in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;")
    escaped = "".join(parts)
    if escaped.startswith("#") and not _HEADING_RE.match(escaped):
        escaped = "\\" + escaped
    return escaped


def _rejoin_split_table_rows(lines: list[str]) -> list[str]:
    """Inside a pipe table, a line without '|' is the first half of a cell split at a <br />."""
    out: list[str] = []
    in_table = False
    pending = ""
    for line in lines:
        if _TABLE_DELIMITER_RE.match(line) and out and "|" in out[-1]:
            in_table = True
            out.append(line)
            continue
        if in_table and line.strip() and "|" not in line:
            pending = f"{pending}{line.strip()}<br />"
            continue
        if in_table and not line.strip():
            in_table = False
            if pending:
                out.append(pending.removesuffix("<br />"))
                pending = ""
        if pending:
            line = f"{pending}{line.lstrip()}"
            pending = ""
        out.append(line)
    if pending:
        out.append(pending.removesuffix("<br />"))
    return out


def _restore_paragraph_breaks(lines: list[str]) -> list[str]:
    """Flattened text: every line was a block of its own, except runs of list items and table rows."""
    out: list[str] = []
    for line in lines:
        if out and not (_continues_block(out[-1], line)):
            out.append("")
        out.append(line)
    return out


def _continues_block(previous: str, line: str) -> bool:
    if _LIST_ITEM_RE.match(line) and _LIST_ITEM_RE.match(previous):
        return True
    return "|" in previous and "|" in line


def _space_headings(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        heading = bool(_HEADING_RE.match(line))
        if heading and out and out[-1] != "":
            out.append("")
        elif out and _HEADING_RE.match(out[-1]) and line != "":
            out.append("")
        out.append(line)
    return out
