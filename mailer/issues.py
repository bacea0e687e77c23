"""Find and parse a newsletter issue, whatever form it comes in, into a :class:`mailer.domain.Issue`.

Three sources:

* **TWiR Markdown** (the main input): Pelican ``Key: value`` header lines, a blank line, then
  Python-Markdown text. Files are found by their ``Number:`` header (or, for old issues, the number
  at the end of ``Title:``), never by their filename: real filenames are misspelled and misdated.
* **A ``site.standard.document`` record** (AT Protocol / standard.site JSON): plain text whose link
  targets were stripped, Markdown-like in shape.
* **A rendered HTML page** of the issue: its article body, cleaned of anything active.

Pure layer: reads files, never the network or the database.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from mailer.domain import Issue
from mailer.errors import AmbiguousIssue, IssueNotFound, MalformedIssue

DEFAULT_SITE_URL = "https://this-week-in-rust.org"
MARKDOWN_SUFFIXES = (".md", ".markdown")
JSON_SUFFIXES = (".json",)
HTML_SUFFIXES = (".html", ".htm")
# A real issue is ~30 KB; anything far bigger is the wrong file, not an issue to mail.
MAX_ISSUE_BYTES = 5 * 1024 * 1024
# Pelican headers are a handful of lines; stop scanning a file that never ends its header.
MAX_HEADER_LINES = 64
STANDARD_DOCUMENT_TYPE = "site.standard.document"

_HEADER_RE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(?P<value>.*)$")
_CONTINUATION_RE = re.compile(r"^ {4,}(?P<value>\S.*)$")
_TRAILING_NUMBER_RE = re.compile(r"(\d+)\s*$")
_PATH_DATE_RE = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/")
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


# --------------------------------------------------------------------------- finding issues


@dataclass(frozen=True)
class _Candidate:
    path: Path
    number: int


def find_issue_file(issues_dir: Path, number: int) -> Path:
    """The one Markdown file in ``issues_dir`` whose header claims issue ``number``."""
    claims, unreadable = _scan_issue_numbers(issues_dir)
    matches = [c.path for c in claims if c.number == number]
    if len(matches) > 1:
        names = " and ".join(str(p) for p in matches)
        raise AmbiguousIssue(f"issue {number} is claimed by more than one file: {names}; keep one")
    if matches:
        return matches[0]
    raise IssueNotFound(_not_found_message(issues_dir, number, claims, unreadable))


def latest_issue_number(issues_dir: Path) -> int:
    """The highest issue number any file in ``issues_dir`` claims."""
    claims, unreadable = _scan_issue_numbers(issues_dir)
    if not claims:
        hint = f"; unreadable headers: {'; '.join(unreadable)}" if unreadable else ""
        raise IssueNotFound(f"no issues found in {issues_dir} (looked for *.md and *.markdown with a Title: header){hint}")
    return max(c.number for c in claims)


def load_issue_by_number(issues_dir: Path, number: int | str, *, site_url: str = DEFAULT_SITE_URL) -> Issue:
    """Load issue ``number`` (an int, a digit string or ``"latest"``) from ``issues_dir``."""
    wanted = _parse_issue_number(number, issues_dir)
    return load_issue(find_issue_file(issues_dir, wanted), site_url=site_url)


def _parse_issue_number(number: int | str, issues_dir: Path) -> int:
    if isinstance(number, str):
        text = number.strip()
        if text.lower() == "latest":
            return latest_issue_number(issues_dir)
        if not text.isascii() or not text.isdigit():
            raise IssueNotFound(f"{number!r} is not an issue number: give a number such as 644, or 'latest'")
        number = int(text)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise IssueNotFound(f"{number!r} is not an issue number: give a number such as 644, or 'latest'")
    return number


def _scan_issue_numbers(issues_dir: Path) -> tuple[list[_Candidate], list[str]]:
    """Every (file, number) the directory's headers claim, plus files whose header is unreadable."""
    issues_dir = Path(issues_dir)
    if not issues_dir.is_dir():
        raise IssueNotFound(f"issues directory {issues_dir} does not exist (set MAILER_ISSUES_DIR)")
    claims: list[_Candidate] = []
    unreadable: list[str] = []
    for path in _markdown_files(issues_dir):
        try:
            number = _claimed_number(path)
        except MalformedIssue as exc:
            unreadable.append(str(exc))
            continue
        if number is not None:
            claims.append(_Candidate(path, number))
    return claims, unreadable


def _markdown_files(issues_dir: Path) -> Iterator[Path]:
    for path in sorted(issues_dir.iterdir()):
        if path.suffix.lower() in MARKDOWN_SUFFIXES and path.is_file():
            yield path


def _claimed_number(path: Path) -> int | None:
    """The number a file's header claims, reading only its header. None: not an issue file."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            header = _parse_header_lines(_first_lines(handle), path)
    except OSError as exc:
        raise MalformedIssue(f"{path}: cannot be read ({exc.strerror})") from exc
    return header.number


def _first_lines(handle) -> Iterator[str]:
    for count, line in enumerate(handle):
        if count >= MAX_HEADER_LINES or not line.strip():
            return
        yield line.rstrip("\r\n")


def _not_found_message(issues_dir: Path, number: int, claims: list[_Candidate], unreadable: list[str]) -> str:
    if not claims:
        message = f"no issue {number} in {issues_dir}: it holds no issue files (*.md, *.markdown with a Title: header)"
    else:
        known = sorted({c.number for c in claims})
        if len(known) == 1:
            message = f"no issue {number} in {issues_dir} (it holds only issue {known[0]})"
        else:
            nearest = sorted(sorted(known, key=lambda n: (abs(n - number), n))[:3])
            message = (
                f"no issue {number} in {issues_dir} ({len(known)} issues, {known[0]}–{known[-1]}; "
                f"nearest: {', '.join(map(str, nearest))})"
            )
    if unreadable:
        message += f"; files with unreadable headers: {'; '.join(unreadable)}"
    return message


# --------------------------------------------------------------------------- loading any source


def load_issue(path: Path, *, site_url: str = DEFAULT_SITE_URL) -> Issue:
    """Load one issue file; the format comes from the extension, else from the content."""
    path = Path(path)
    text = _read_issue_text(path)
    kind = _detect_format(path, text)
    if kind == "standard-site":
        return parse_standard_site(text, source_path=path)
    if kind == "html":
        return parse_html_page(text, source_path=path, site_url=site_url)
    return parse_markdown_issue(text, source_path=path, site_url=site_url)


def _read_issue_text(path: Path) -> str:
    if not path.exists():
        raise IssueNotFound(f"no such issue file: {path}")
    if not path.is_file():
        raise IssueNotFound(f"{path} is not a file (give the path of one issue file)")
    size = path.stat().st_size
    if size > MAX_ISSUE_BYTES:
        raise MalformedIssue(f"{path} is {size:,} bytes, too large to be an issue (limit {MAX_ISSUE_BYTES:,})")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedIssue(f"{path} is not UTF-8 text (byte {exc.start})") from exc


def _detect_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in JSON_SUFFIXES:
        return "standard-site"
    if suffix in HTML_SUFFIXES:
        return "html"
    start = text.lstrip()[:1]
    if start == "{":
        return "standard-site"
    if start == "<" and not _HEADER_RE.match(text.lstrip().splitlines()[0]):
        return "html"
    return "markdown"


# --------------------------------------------------------------------------- TWiR Markdown


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
            return _number_from_title(title)
        return None


def parse_markdown_issue(text: str, *, source_path: Path | None = None, site_url: str = DEFAULT_SITE_URL) -> Issue:
    """A TWiR issue: Pelican ``Key: value`` headers, a blank line, then Markdown."""
    source = str(source_path) if source_path else "the issue"
    if not text.strip():
        raise MalformedIssue(f"{source} is empty: an issue starts with 'Title: This Week in Rust N'")
    lines = text.lstrip("\ufeff").splitlines()
    header = _parse_header_lines(lines, source_path)
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
    )


def _parse_header_lines(lines, source_path: Path | None) -> _Header:
    """Pelican/Python-Markdown ``meta``: ``Key: value`` lines (4-space continuations) up to a blank line.

    Like Python-Markdown, the first line that is neither ends the header and starts the body.
    """
    source = str(source_path) if source_path else "the issue"
    fields: dict[str, str] = {}
    line_numbers: dict[str, int] = {}
    last_key: str | None = None
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - index is the body start after the loop
        if not line.strip():
            return _Header(fields, line_numbers, index + 1, source)
        match = _HEADER_RE.match(line)
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


def _number_from_title(title: str) -> int | None:
    match = _TRAILING_NUMBER_RE.search(title)
    return int(match.group(1)) if match else None


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


# --------------------------------------------------------------------------- standard.site record


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
        number=_number_from_title(title),
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


def _record_dict(record: dict | str, source: str) -> dict:
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except json.JSONDecodeError as exc:
            raise MalformedIssue(f"{source} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(record, dict):
        raise MalformedIssue(f"{source} is not a JSON object (a site.standard.document record is one)")
    # com.atproto.repo.getRecord wraps the record: {"uri": ..., "cid": ..., "value": {...}}
    if "$type" not in record and isinstance(record.get("value"), dict):
        record = record["value"]
    record_type = record.get("$type")
    if record_type is not None and record_type != STANDARD_DOCUMENT_TYPE:
        raise MalformedIssue(f"{source} is a {record_type!r} record, not a {STANDARD_DOCUMENT_TYPE}")
    return record


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
    if not isinstance(site, str) or not _is_web_url(site):
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


# --------------------------------------------------------------------------- rendered HTML page

_ARTICLE_SELECTORS = ("article", "[itemprop=articleBody]", ".post-content", ".entry-content", "main")
_INNER_BODY_SELECTORS = ("[itemprop=articleBody]", ".post-content", ".entry-content")
# Everything that could run, load, submit or restyle in a reader's mail client.
_ACTIVE_TAGS = ("script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
                "input", "button", "select", "textarea", "noscript", "template", "link", "meta", "base", "svg")
_URL_ATTRIBUTES = ("href", "src", "srcset", "poster", "cite", "action", "formaction", "background")
_SAFE_URL_SCHEMES = ("http", "https", "mailto")
_TITLE_SEPARATORS = re.compile(r"\s+[|·—–-]\s+")


def parse_html_page(html: str, *, source_path: Path | None = None, site_url: str = DEFAULT_SITE_URL) -> Issue:
    """The issue's article page as the site renders it: its article body, title, date and canonical URL."""
    from bs4 import BeautifulSoup, Comment

    source = str(source_path) if source_path else "the HTML page"
    soup = BeautifulSoup(html, "html.parser")
    container = _article_container(soup)
    if container is None:
        raise MalformedIssue(
            f"{source} has no article body (looked for <article>, [itemprop=articleBody], "
            f".post-content, .entry-content, <main>)"
        )
    title = _page_title(soup, container)
    if not title:
        raise MalformedIssue(f"{source} has no title (no <h1>, og:title meta or <title>)")
    web_url = _canonical_url(soup)
    issue_date, published_at = _page_date(soup, container, source)

    body = _inner_body(container)
    for comment in body.find_all(string=lambda node: isinstance(node, Comment)):
        comment.extract()
    _drop_title_heading(body, title)
    _drop_active_content(body)
    _absolutize_urls(body, web_url or site_url.rstrip("/") + "/")
    fragment = "".join(str(child) for child in body.contents).strip()
    if not fragment:
        raise MalformedIssue(f"{source}: the article body is empty")
    return Issue(
        title=title,
        body=fragment + "\n",
        body_format="html",
        number=_number_from_title(title),
        date=issue_date,
        published_at=published_at,
        category=_meta_content(soup, "article:section"),
        tags=tuple(_meta_contents(soup, "article:tag")),
        web_url=web_url,
        source_path=source_path,
        source_kind="html",
    )


def _article_container(soup):
    for selector in _ARTICLE_SELECTORS:
        found = soup.select_one(selector)
        if found is not None:
            return found
    return None


def _inner_body(container):
    """Inside an <article>, prefer the element that holds only the text (not header and footer)."""
    for selector in _INNER_BODY_SELECTORS:
        found = container.select_one(selector)
        if found is not None:
            return found
    for part in container.find_all(["header", "footer"], recursive=False):
        part.extract()
    return container


def _page_title(soup, container) -> str | None:
    heading = container.find("h1") or soup.find("h1")
    if heading and heading.get_text(strip=True):
        return _clean_space(heading.get_text(" ", strip=True))
    og_title = _meta_content(soup, "og:title")
    if og_title:
        return og_title
    if soup.title and soup.title.get_text(strip=True):
        return _title_without_site_name(_clean_space(soup.title.get_text(" ", strip=True)))
    return None


def _title_without_site_name(title: str) -> str:
    parts = _TITLE_SEPARATORS.split(title)
    for part in parts:
        if _number_from_title(part) is not None:
            return part.strip()
    return title


def _canonical_url(soup) -> str | None:
    for link in soup.find_all("link", href=True):
        rel = link.get("rel") or []
        rel = rel if isinstance(rel, list) else [rel]
        if "canonical" in (r.lower() for r in rel) and _is_web_url(link["href"]):
            return link["href"].strip()
    og_url = _meta_content(soup, "og:url")
    return og_url if og_url and _is_web_url(og_url) else None


def _page_date(soup, container, source: str) -> tuple[date | None, datetime | None]:
    time_tag = container.find("time", attrs={"datetime": True}) or soup.find("time", attrs={"datetime": True})
    raw = time_tag["datetime"] if time_tag else (
        _meta_content(soup, "article:published_time") or _meta_content(soup, "date")
    )
    if not raw:
        return None, None
    raw = raw.strip()
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw), None
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise MalformedIssue(f"{source}: the page's date {raw!r} is not an ISO 8601 date") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # The calendar date as the page states it (its own zone), the instant in UTC.
    return parsed.date(), parsed.astimezone(UTC)


def _meta_content(soup, name: str) -> str | None:
    values = _meta_contents(soup, name)
    return values[0] if values else None


def _meta_contents(soup, name: str) -> list[str]:
    found = soup.find_all("meta", attrs={"property": name}) + soup.find_all("meta", attrs={"name": name})
    return [_clean_space(m["content"]) for m in found if m.get("content") and m["content"].strip()]


def _drop_title_heading(body, title: str) -> None:
    heading = body.find("h1")
    if heading is not None and _clean_space(heading.get_text(" ", strip=True)) == title:
        heading.decompose()


def _drop_active_content(body) -> None:
    for tag in body.find_all(_ACTIVE_TAGS):
        tag.decompose()
    for tag in body.find_all(True):
        for attribute in list(tag.attrs):
            if attribute.lower().startswith("on") or attribute.lower() == "style" and _style_is_active(tag[attribute]):
                del tag[attribute]
        for attribute in _URL_ATTRIBUTES:
            if attribute in tag.attrs and not _is_safe_url(tag[attribute]):
                del tag[attribute]


def _style_is_active(style) -> bool:
    lowered = str(style).lower()
    return "expression(" in lowered or "url(" in lowered or "javascript:" in lowered


def _absolutize_urls(body, base: str) -> None:
    for tag in body.find_all(True):
        for attribute in ("href", "src"):
            value = tag.get(attribute)
            if isinstance(value, str) and value and not value.startswith("#"):
                tag[attribute] = urljoin(base, value.strip())


def _is_safe_url(value) -> bool:
    text = html_lib.unescape(str(value)).strip()
    # Control characters and whitespace inside a scheme ("java\tscript:") must not slip past.
    compact = re.sub(r"[\x00-\x20]", "", text)
    scheme = urlsplit(compact).scheme.lower()
    return scheme == "" or scheme in _SAFE_URL_SCHEMES


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _clean_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
