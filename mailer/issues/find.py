"""Find an issue in a folder by the number its header claims, never by its filename.

Real filenames are misspelled and misdated, so every Markdown file's header is read (only the
header) and the one claiming the wanted number is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailer.domain import Issue
from mailer.errors import AmbiguousIssue, IssueNotFound, MalformedIssue
from mailer.issues.common import DEFAULT_SITE_URL
from mailer.issues.load import MARKDOWN_SUFFIXES, load_issue
from mailer.issues.markdown import parse_header_lines

# Pelican headers are a handful of lines; stop scanning a file that never ends its header.
MAX_HEADER_LINES = 64


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
            header = parse_header_lines(_first_lines(handle), path)
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
