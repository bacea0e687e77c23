"""`mailer check`: lint an issue before it is published, pointing at lines of its source file.

Each issue is rendered as a send would render it, and the Markdown is read the way the site
(Python-Markdown with "extra") reads it: what matters is what readers would see, so faults are
found in the rendered result and then traced back to the source line that made them.

Errors (the issue would go out broken): an HTML part over the size budget, Markdown link syntax
left as literal text, a link without a target, a relative link that cannot be made absolute, a
malformed header, a duplicate issue number, an image without alt text.
Warnings: non-https links, URL shorteners, the same link twice in one issue, a skipped heading
level.

No database and no network: only the file system, Markdown and the renderer.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, NavigableString

from mailer.domain import Issue
from mailer.errors import IssueError, MailerError
from mailer.issues import MARKDOWN_SUFFIXES, load_issue
from mailer.render import RenderedIssue, RenderOptions, render_issue
from mailer.render.body import markdown_to_html

DEFAULT_HTML_BUDGET = 90 * 1024  # under Gmail's 102 KB clip, with room for the reader's links
# Hosts whose links hide where they lead; readers (and spam filters) distrust them.
URL_SHORTENERS = frozenset({
    "bit.ly", "t.co", "goo.gl", "tinyurl.com", "ow.ly", "is.gd", "buff.ly", "rebrand.ly",
    "cutt.ly", "shorturl.at", "lnkd.in", "tiny.cc", "rb.gy", "t.ly", "s.id", "bl.ink", "v.gd",
    "dlvr.it", "trib.al", "shorturl.com", "clck.ru", "qr.ae", "amzn.to", "forms.gle",
})
REQUIRED_HEADERS = ("title", "date")

_HEADER_LINE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(?P<value>.*)$")
_CONTINUATION = re.compile(r"^ {4,}\S")
_TITLE_NUMBER = re.compile(r"(\d+)\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"`+[^`\n]*`+")
_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_UNPARSED_INLINE = re.compile(r"!?\[[^\[\]\n]*\]\([^\n]{0,60}")
_UNRESOLVED_REFERENCE = re.compile(r"!?\[[^\[\]\n]+\]\[[^\[\]\n]*\]")
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_DOMAIN_LIKE = re.compile(r"^(www\.)?[a-z0-9-]+(\.[a-z0-9-]+)*\.(com|org|net|io|dev|rs|me|co|app|xyz|info|edu)(/|$)", re.I)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    severity: str  # "error" or "warning"
    code: str  # a stable short name for tools, e.g. "unparsed-link"
    message: str

    def as_line(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"

    def as_github_annotation(self) -> str:
        # Workflow commands end at a newline; %, CR and LF must be escaped in the message.
        text = self.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::{self.severity} file={self.path},line={self.line}::{text}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CheckOptions:
    render: RenderOptions
    html_budget: int = DEFAULT_HTML_BUDGET


@dataclass
class CheckedIssue:
    path: Path
    number: int | None
    findings: list[Finding] = field(default_factory=list)
    rendered: RenderedIssue | None = None

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")


# --------------------------------------------------------------------------- entry points


def check_paths(paths: Iterable[Path], options: CheckOptions) -> list[CheckedIssue]:
    """Check each file; a number claimed twice (among them or beside them) is an error in each."""
    checked = [check_file(Path(p), options) for p in paths]
    _flag_duplicate_numbers(checked)
    return checked


def check_file(path: Path, options: CheckOptions) -> CheckedIssue:
    """Every finding for one issue file, with the line of the source that causes it."""
    result = CheckedIssue(path=path, number=None)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise IssueError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    markdown_source = path.suffix.lower() in MARKDOWN_SUFFIXES
    if markdown_source:
        result.findings.extend(check_header(str(path), text.splitlines()))
    try:
        issue = load_issue(path, site_url=options.render.site_url)
    except IssueError as exc:
        result.findings.append(_error(str(path), _line_in(str(exc)), "malformed-header", _strip_source(str(exc), path)))
        return _deduplicated(result)
    result.number = issue.number
    if markdown_source:
        result.findings.extend(check_markdown_body(str(path), text, issue))
    result.rendered = _render(issue, options, result)
    return _deduplicated(result)


def _render(issue: Issue, options: CheckOptions, result: CheckedIssue) -> RenderedIssue | None:
    try:
        rendered = render_issue(issue, options.render)
    except MailerError as exc:
        result.findings.append(_error(str(result.path), 1, "render", f"the issue does not render: {exc}"))
        return None
    if rendered.html_bytes > options.html_budget:
        result.findings.append(_error(
            str(result.path), 1, "html-size",
            f"HTML part is {rendered.html_bytes:,} bytes, over the {options.html_budget:,}-byte budget "
            f"(Gmail clips mail over 102,400 bytes, hiding the rest and the unsubscribe link)"))
    return rendered


# --------------------------------------------------------------------------- the header


def check_header(path: str, lines: list[str]) -> list[Finding]:
    """Pelican headers: ``Key: value`` lines up to the first blank line."""
    findings: list[Finding] = []
    fields: dict[str, tuple[str, int]] = {}
    for index, line in enumerate(lines):
        number = index + 1
        if not line.strip():
            break
        if _CONTINUATION.match(line) and fields:
            continue
        match = _HEADER_LINE.match(line)
        if match is None:
            if fields:  # Markdown would end the header here and show the rest as text
                findings.append(_error(path, number, "malformed-header",
                                       f"header line {line.strip()[:60]!r} is not 'Key: value'; "
                                       "the header ends at the first blank line"))
            break
        key, value = match["key"].lower(), match["value"].strip()
        if key in fields:
            findings.append(_error(path, number, "malformed-header",
                                   f"{match['key']} is given twice (first on line {fields[key][1]})"))
        if not value:
            findings.append(_error(path, number, "malformed-header", f"{match['key']}: has no value"))
        fields.setdefault(key, (value, number))
    findings.extend(_header_field_findings(path, fields, lines))
    return findings


def _header_field_findings(path: str, fields: dict[str, tuple[str, int]], lines: list[str]) -> list[Finding]:
    findings = []
    for key in REQUIRED_HEADERS:
        if key not in fields:
            first = lines[0][:60] if lines else ""
            findings.append(_error(path, 1, "malformed-header",
                                   f"no '{key.title()}:' header line (the file starts with {first!r})"))
    if "date" in fields and fields["date"][0] and not _DATE.match(fields["date"][0]):
        value, line = fields["date"]
        findings.append(_error(path, line, "malformed-header",
                               f"Date {value!r} is not a date (write YYYY-MM-DD or YYYY-MM-DD HH:MM)"))
    findings.extend(_number_findings(path, fields))
    return findings


def _number_findings(path: str, fields: dict[str, tuple[str, int]]) -> list[Finding]:
    title, title_line = fields.get("title", ("", 1))
    title_match = _TITLE_NUMBER.search(title)
    if "number" not in fields:
        if title and not title_match:
            return [_error(path, title_line, "malformed-header",
                           "no issue number: add 'Number: N' or end the Title with the number")]
        return []
    value, line = fields["number"]
    if not value.isascii() or not value.isdigit():
        return [_error(path, line, "malformed-header", f"Number {value!r} is not a whole number")]
    if title_match and int(title_match[1]) != int(value):
        return [_error(path, line, "malformed-header",
                       f"Number {value} disagrees with the Title, which ends in {title_match[1]}")]
    return []


# --------------------------------------------------------------------------- the body


def check_markdown_body(path: str, source: str, issue: Issue) -> list[Finding]:
    """Links, images and headings as Python-Markdown renders them, traced back to source lines."""
    soup = BeautifulSoup(markdown_to_html(issue.body), "html.parser")
    locate = Locator(source.splitlines())
    findings: list[Finding] = []
    findings.extend(_unparsed_syntax(path, soup, locate))
    findings.extend(_link_findings(path, soup, locate, issue))
    findings.extend(_image_findings(path, soup, locate))
    findings.extend(_heading_findings(path, locate))
    return findings


def _unparsed_syntax(path: str, soup: BeautifulSoup, locate: Locator) -> list[Finding]:
    findings = []
    for node in soup.find_all(string=True):
        if not isinstance(node, NavigableString) or node.find_parent(["code", "pre"]) is not None:
            continue
        for match in _UNPARSED_INLINE.finditer(str(node)):
            snippet = match.group(0)
            findings.append(_error(path, locate.find(snippet[:40]), "unparsed-link",
                                   f"Markdown link syntax left as text (closing parenthesis missing?): "
                                   f"{_shorten(snippet)!r}"))
        for match in _UNRESOLVED_REFERENCE.finditer(str(node)):
            findings.append(_error(path, locate.find(match.group(0)), "link-without-target",
                                   f"link without a target: {match.group(0)!r} has no '[label]: URL' line"))
    return findings


def _link_findings(path: str, soup: BeautifulSoup, locate: Locator, issue: Issue) -> list[Finding]:
    findings = []
    lines_of: dict[str, list[int]] = defaultdict(list)
    for link in soup.find_all("a"):
        href = (link.get("href") or "").strip()
        text = link.get_text(" ", strip=True)
        if not href:
            line = locate.find(f"[{text}]") if text else locate.find("]()")
            findings.append(_error(path, line, "link-without-target", f"link without a target: [{text}]"))
            continue
        if href.startswith("#") or href.lower().startswith("mailto:"):
            continue
        line = locate.find(href)
        problem = _target_problem(href, issue)
        if problem:
            findings.append(_error(path, line, *problem))
            continue
        findings.extend(_url_warnings(path, line, href))
        lines_of[href.rstrip("/")].append(line)
    findings.extend(_duplicate_link_warnings(path, lines_of))
    return findings


def _duplicate_link_warnings(path: str, lines_of: dict[str, list[int]]) -> list[Finding]:
    """One warning per repeated address, at its second use, naming every line that has it."""
    found = []
    for url, lines in lines_of.items():
        if len(lines) > 1:
            where = ", ".join(str(n) for n in sorted(set(lines)))
            found.append(_warning(path, lines[1], "duplicate-link",
                                  f"{url} is linked {len(lines)} times (lines {where})"))
    return found


def _target_problem(href: str, issue: Issue) -> tuple[str, str] | None:
    if any(ch.isspace() for ch in href):
        return ("broken-link", f"link target {_shorten(href)!r} has a space in it (a parenthesis or '<>' missing?)")
    parts = urlsplit(href)
    if parts.scheme or href.startswith("//"):
        return None
    if "{" in href:
        return ("relative-link", f"link {href!r} uses a site-generator placeholder; "
                                 "the mail cannot resolve it: write the full https:// address")
    if _DOMAIN_LIKE.match(href):
        return ("relative-link", f"link {href!r} has no https:// (it would point into this site)")
    if not href.startswith("/") and not issue.web_url:
        return ("relative-link", f"relative link {href!r} cannot be made absolute: the issue has no web "
                                 "address (Date header) to resolve it against")
    return None


def _url_warnings(path: str, line: int, href: str) -> list[Finding]:
    parts = urlsplit(href)
    host = (parts.hostname or "").lower().removeprefix("www.")
    found = []
    if parts.scheme.lower() == "http":
        found.append(_warning(path, line, "insecure-link", f"link is not https: {href}"))
    if host in URL_SHORTENERS:
        found.append(_warning(path, line, "url-shortener",
                              f"link goes through the URL shortener {host}: link to where it leads"))
    return found


def _image_findings(path: str, soup: BeautifulSoup, locate: Locator) -> list[Finding]:
    findings = []
    for image in soup.find_all("img"):
        src = (image.get("src") or "").strip()
        if not (image.get("alt") or "").strip():
            line = locate.find(src) if src else locate.find("![")
            findings.append(_error(path, line, "image-without-alt",
                                   f"image without alt text: {_shorten(src) or '(no source)'}"))
    return findings


def _heading_findings(path: str, locate: Locator) -> list[Finding]:
    """The mail's title is the one <h1>, so the body's headings start at level 2 at most."""
    findings = []
    previous = 1
    for line, level, text in locate.headings():
        if level > previous + 1:
            findings.append(_warning(path, line, "heading-skip",
                                     f"heading {text!r} is level {level} after level {previous}: "
                                     f"a level is skipped"))
        previous = level
    return findings


# --------------------------------------------------------------------------- duplicates


def _flag_duplicate_numbers(checked: list[CheckedIssue]) -> None:
    claims: dict[int, set[Path]] = defaultdict(set)
    folders = {c.path.resolve().parent for c in checked}
    for folder in folders:
        for number, path in claimed_numbers(folder):
            claims[number].add(path)
    for item in checked:
        if item.number is not None:
            claims[item.number].add(item.path.resolve())
    for item in checked:
        others = sorted(p for p in claims.get(item.number, ()) if p != item.path.resolve())
        if others:
            names = ", ".join(p.name for p in others)
            item.findings.insert(0, _error(str(item.path), _number_line(item.path), "duplicate-number",
                                           f"issue {item.number} is also claimed by {names}"))


def claimed_numbers(folder: Path) -> list[tuple[int, Path]]:
    """(number, file) for every Markdown issue in ``folder`` whose header can be read."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in MARKDOWN_SUFFIXES or not path.is_file():
            continue
        try:
            number = load_issue(path).number
        except IssueError:
            continue
        if number is not None:
            found.append((number, path.resolve()))
    return found


def _number_line(path: Path) -> int:
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()[:64]
    except OSError:
        return 1
    for index, line in enumerate(lines):
        if not line.strip():
            break
        if line.lower().startswith("number:"):
            return index + 1
    return 1


# --------------------------------------------------------------------------- source lines


class Locator:
    """Finds the source line a rendered fault came from.

    Code blocks, inline code and editor comments are blanked first (they never render as links).
    Each needle keeps its own cursor, so the second identical link maps to the second line with
    it, in reading order like the rendered HTML.
    """

    def __init__(self, lines: list[str]) -> None:
        self.lines = _searchable(lines)
        self.body_start = next((i + 1 for i, line in enumerate(lines) if not line.strip()), 1)
        self._cursor: Counter[str] = Counter()

    def find(self, needle: str) -> int:
        start = self._cursor[needle]
        for index in (*range(start, len(self.lines)), *range(0, start)):
            if index >= self.body_start - 1 and needle in self.lines[index]:
                self._cursor[needle] = index + 1
                return index + 1
        return self.body_start + 1 if self.body_start < len(self.lines) else 1

    def headings(self) -> Iterable[tuple[int, int, str]]:
        for index in range(self.body_start, len(self.lines)):
            line = self.lines[index]
            match = _ATX_HEADING.match(line)
            if match:
                yield index + 1, len(match[1]), _MARKDOWN_LINK.sub(r"\1", match[2])
            elif _is_setext_underline(line, self.lines[index - 1]):
                yield index, 1 if "=" in line else 2, self.lines[index - 1].strip()


def _is_setext_underline(line: str, previous: str) -> bool:
    return (bool(re.fullmatch(r"\s{0,3}(=+|-+)\s*", line)) and bool(previous.strip())
            and not previous.lstrip().startswith(("#", "-", "*", "+", "|", ">")))


def _searchable(lines: list[str]) -> list[str]:
    out, in_fence, in_comment = [], False, False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append("")
            continue
        if in_fence or line.startswith("    ") and (not out or not out[-1].strip()):
            out.append("")
            continue
        line, in_comment = _without_comments(line, in_comment)
        out.append(_CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line))
    return out


def _without_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    kept = ""
    while line:
        if in_comment:
            end = line.find("-->")
            if end < 0:
                return kept, True
            line, in_comment = line[end + 3:], False
        else:
            start = line.find("<!--")
            if start < 0:
                return kept + line, False
            kept, line, in_comment = kept + line[:start], line[start + 4:], True
    return kept, in_comment


# --------------------------------------------------------------------------- small helpers


def _error(path: str, line: int, code: str, message: str) -> Finding:
    return Finding(path, line, "error", code, message)


def _warning(path: str, line: int, code: str, message: str) -> Finding:
    return Finding(path, line, "warning", code, message)


def _shorten(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line_in(message: str) -> int:
    match = re.search(r"\bline (\d+)", message)
    return int(match[1]) if match else 1


def _strip_source(message: str, path: Path) -> str:
    return message.removeprefix(str(path)).lstrip(" :").removeprefix(f"line {_line_in(message)}: ") or message


def _deduplicated(result: CheckedIssue) -> CheckedIssue:
    """The header check and the loader can both notice one fault: say it once, in line order."""
    seen, unique = set(), []
    for finding in result.findings:
        key = (finding.line, finding.code)
        if finding.code == "malformed-header" and key in seen:
            continue
        seen.add(key)
        unique.append(finding)
    result.findings = sorted(unique, key=lambda f: (f.line, f.severity != "error"))
    return result
