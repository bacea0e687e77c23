"""`mailer check`: lint an issue before it is published, pointing at lines of its source file.

Each issue is rendered as a send would render it, and the Markdown is read the way the site
(Python-Markdown with "extra") reads it: what matters is what readers would see, so faults are
found in the rendered result and then traced back to the source line that made them.

Errors (the issue would go out broken): an HTML part over the size budget, Markdown link syntax
left as literal text, a link without a target, a relative link that cannot be made absolute, a
malformed header, a duplicate issue number, an image without alt text.
Warnings: non-https links, URL shorteners, the same link twice in one issue, a skipped heading
level. The warnings a newsletter has as its standard are listed once in `mailer-check.toml`
(:mod:`mailer.check.accept`) and counted apart, not repeated every week.

No database and no network: only the file system, Markdown and the renderer.
"""

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailer.check.accept import NOTHING_ACCEPTED, Accepted, find_accept_file, load_accepted
from mailer.check.body import URL_SHORTENERS, check_markdown_body
from mailer.check.findings import Finding, error
from mailer.check.header import check_header
from mailer.domain import Issue
from mailer.errors import IssueError, MailerError
from mailer.figures import GMAIL_CLIP_BYTES, NEAR_CLIP_BYTES, near_gmail_clip
from mailer.issues import MARKDOWN_SUFFIXES, load_issue
from mailer.render import RenderedIssue, RenderOptions, render_issue

__all__ = ["DEFAULT_HTML_BUDGET", "URL_SHORTENERS", "Accepted", "CheckOptions", "CheckedIssue",
           "Finding", "check_file", "check_paths", "claimed_numbers"]

DEFAULT_HTML_BUDGET = NEAR_CLIP_BYTES  # under Gmail's clip, with room for the reader's links


@dataclass(frozen=True)
class CheckOptions:
    render: RenderOptions
    html_budget: int = DEFAULT_HTML_BUDGET
    # mailer-check.toml to use for every file; None: each file's nearest one
    accept_file: Path | None = None


@dataclass
class CheckedIssue:
    path: Path
    number: int | None
    findings: list[Finding] = field(default_factory=list)
    rendered: RenderedIssue | None = None
    accepted: list[Finding] = field(default_factory=list)  # warnings mailer-check.toml accepts
    accepted_by: Path | None = None

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")


# --------------------------------------------------------------------------- entry points


def check_paths(paths: Iterable[Path], options: CheckOptions) -> list[CheckedIssue]:
    """Check each file; a number claimed twice (among them or beside them) is an error in each."""
    checked = [check_file(Path(p), options) for p in paths]
    _flag_duplicate_numbers(checked)
    accepted_files: dict[Path | None, Accepted] = {}
    for item in checked:
        source = options.accept_file or find_accept_file(item.path)
        if source not in accepted_files:
            accepted_files[source] = load_accepted(source) if source else NOTHING_ACCEPTED
        _set_aside_accepted(item, accepted_files[source])
    return checked


def _set_aside_accepted(item: CheckedIssue, accepted: Accepted) -> None:
    item.accepted = [f for f in item.findings if accepted.accepts(f)]
    item.findings = [f for f in item.findings if not accepted.accepts(f)]
    item.accepted_by = accepted.source


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
        result.findings.append(error(str(path), _line_in(str(exc)), "malformed-header", _strip_source(str(exc), path)))
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
        result.findings.append(error(str(result.path), 1, "render", f"the issue does not render: {exc}"))
        return None
    if near_gmail_clip(rendered.html_bytes, options.html_budget):
        result.findings.append(error(
            str(result.path), 1, "html-size",
            f"HTML part is {rendered.html_bytes:,} bytes, over the {options.html_budget:,}-byte budget "
            f"(Gmail clips mail over {GMAIL_CLIP_BYTES:,} bytes, hiding the rest and the unsubscribe link)"))
    return rendered


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
        if item.number is None:
            continue
        others = sorted(p for p in claims.get(item.number, ()) if p != item.path.resolve())
        if others:
            names = ", ".join(p.name for p in others)
            item.findings.insert(0, error(str(item.path), _number_line(item.path), "duplicate-number",
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


# --------------------------------------------------------------------------- small helpers


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
