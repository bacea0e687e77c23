"""Load one issue file, whatever form it comes in: the format comes from the extension, else the content."""

from __future__ import annotations

from pathlib import Path

from mailer.domain import Issue
from mailer.errors import IssueNotFound, MalformedIssue
from mailer.issues.common import DEFAULT_SITE_URL
from mailer.issues.markdown import HEADER_RE, parse_markdown_issue
from mailer.issues.pages import parse_html_page
from mailer.issues.records import parse_standard_site

MARKDOWN_SUFFIXES = (".md", ".markdown")
JSON_SUFFIXES = (".json",)
HTML_SUFFIXES = (".html", ".htm")
# A real issue is ~30 KB; anything far bigger is the wrong file, not an issue to mail.
MAX_ISSUE_BYTES = 5 * 1024 * 1024


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
    if start == "<" and not HEADER_RE.match(text.lstrip().splitlines()[0]):
        return "html"
    return "markdown"
