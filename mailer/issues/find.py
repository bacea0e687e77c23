"""Find an issue in a folder by the number its header claims, never by its filename.

Real filenames are misspelled and misdated, so every Markdown file's header is read (only the
header) and the one claiming the wanted number is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailer.domain import Issue
from mailer.errors import AmbiguousIssue, IssueNotFound, MalformedIssue, NotAnIssueNumber
from mailer.issues.common import DEFAULT_SITE_URL
from mailer.issues.load import MARKDOWN_SUFFIXES, load_issue
from mailer.issues.markdown import parse_header_lines

# Pelican headers are a handful of short lines; stop scanning a file that never ends its
# header, and read only the head of each file (a whole first line could be any size).
MAX_HEADER_LINES = 64
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_LINE = 2048  # characters
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")  # the newlines text mode reads


@dataclass(frozen=True)
class _Candidate:
    path: Path
    number: int


def find_issue_file(issues_dir: Path, number: int, *, follow_symlinks: bool = True) -> Path:
    """The one Markdown file in ``issues_dir`` whose header claims issue ``number``.

    ``follow_symlinks=False`` (a git checkout): a symbolic link is never read, so nothing
    outside the folder can pass for an issue."""
    claims, unreadable = _scan_issue_numbers(issues_dir, follow_symlinks)
    matches = [c.path for c in claims if c.number == number]
    if len(matches) > 1:
        names = " and ".join(str(p) for p in matches)
        raise AmbiguousIssue(f"issue {number} is claimed by more than one file: {names}; keep one")
    if matches:
        return matches[0]
    raise IssueNotFound(_not_found_message(issues_dir, number, claims, unreadable))


def latest_issue_number(issues_dir: Path, *, follow_symlinks: bool = True) -> int:
    """The highest issue number any file in ``issues_dir`` claims."""
    claims, unreadable = _scan_issue_numbers(issues_dir, follow_symlinks)
    if not claims:
        hint = f"; unreadable headers: {'; '.join(unreadable)}" if unreadable else ""
        raise IssueNotFound(f"no issues found in {issues_dir} (looked for *.md and *.markdown with a Title: header){hint}")
    return max(c.number for c in claims)


def load_issue_by_number(issues_dir: Path, number: int | str, *, site_url: str = DEFAULT_SITE_URL,
                         follow_symlinks: bool = True) -> Issue:
    """Load issue ``number`` (an int, a digit string or ``"latest"``) from ``issues_dir``."""
    wanted = _parse_issue_number(number, issues_dir, follow_symlinks)
    return load_issue(find_issue_file(issues_dir, wanted, follow_symlinks=follow_symlinks), site_url=site_url)


def _parse_issue_number(number: int | str, issues_dir: Path, follow_symlinks: bool) -> int:
    if isinstance(number, str):
        text = number.strip()
        if text.lower() == "latest":
            return latest_issue_number(issues_dir, follow_symlinks=follow_symlinks)
        if not text.isascii() or not text.isdigit():
            raise NotAnIssueNumber(f"{number!r} is not an issue number: give a number such as 644, or 'latest'")
        number = int(text)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise NotAnIssueNumber(f"{number!r} is not an issue number: give a number such as 644, or 'latest'")
    return number


def _scan_issue_numbers(issues_dir: Path, follow_symlinks: bool) -> tuple[list[_Candidate], list[str]]:
    """Every (file, number) the directory's headers claim, plus files whose header is unreadable."""
    issues_dir = Path(issues_dir)
    if not issues_dir.is_dir():
        raise IssueNotFound(f"issues directory {issues_dir} does not exist (set MAILER_ISSUES_DIR)")
    claims: list[_Candidate] = []
    unreadable: list[str] = []
    for path in _markdown_files(issues_dir):
        if not follow_symlinks and path.is_symlink():
            unreadable.append(f"{path}: a symbolic link, not followed")
            continue
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
    """The number a file's header claims, reading only its head. None: not an issue file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(MAX_HEADER_BYTES + 1)
    except OSError as exc:
        raise MalformedIssue(f"{path}: cannot be read ({exc.strerror})") from exc
    return parse_header_lines(_header_lines(head), path).number


def _header_lines(head: bytes) -> Iterator[str]:
    """The header's lines in the first ``MAX_HEADER_BYTES`` of a file, each at most
    ``MAX_HEADER_LINE`` characters: a longer line ends the header, as text would."""
    lines = _NEWLINE_RE.split(head[:MAX_HEADER_BYTES].decode("utf-8-sig", errors="replace"))
    if len(head) > MAX_HEADER_BYTES:
        lines.pop()  # cut short by the bound: not a whole line
    for count, line in enumerate(lines):
        if count >= MAX_HEADER_LINES or not line.strip() or len(line) > MAX_HEADER_LINE:
            return
        yield line


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
