"""Issue 19 item 8: finding an issue by number in a folder reads a bounded head of each file, and
in a git checkout never follows a symbolic link."""

from __future__ import annotations

import tracemalloc

import pytest

from mailer.errors import IssueNotFound
from mailer.issues import load_issue_by_number


def issue_markdown(number: int, words: str = "Hello") -> str:
    return (f"Title: This Week in Rust {number}\nNumber: {number}\nDate: 2026-03-12\n\n"
            f"{words} and welcome to issue {number}.\n\n## Updates from Rust Community\n\n* an update\n")


def test_a_file_with_a_huge_first_line_is_skipped_with_bounded_memory(tmp_path):
    issues = tmp_path / "content"
    issues.mkdir()
    (issues / "2026-03-12-this-week-in-rust.md").write_text(issue_markdown(671))
    with (issues / "0000-huge.md").open("w") as handle:  # sorted first: scanned first
        handle.write("Title: This Week in Rust 999" + "x" * (30 * 1024 * 1024) + "\n\nbody\n")
    tracemalloc.start()
    try:
        issue = load_issue_by_number(issues, 671)
        latest = load_issue_by_number(issues, "latest")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert issue.number == 671 and latest.number == 671
    assert peak < 5 * 1024 * 1024  # reading the whole line would take over 30 MiB


def test_a_header_of_many_fields_is_still_read_whole(tmp_path):
    issues = tmp_path / "content"
    issues.mkdir()
    many_fields = "".join(f"Field{index}: {'v' * 60}\n" for index in range(40))  # a header of 3 KB
    (issues / "a.md").write_text(issue_markdown(670).replace("\n\n", "\n" + many_fields + "\n", 1))
    assert load_issue_by_number(issues, 670).number == 670


def test_a_checkout_does_not_follow_symlinks_but_a_folder_may(tmp_path):
    (tmp_path / "secret.md").write_text(issue_markdown(998, "SECRET"))
    issues = tmp_path / "checkout" / "content"
    issues.mkdir(parents=True)
    (issues / "2026-03-12-this-week-in-rust.md").write_text(issue_markdown(671))
    (issues / "2026-03-19-this-week-in-rust.md").symlink_to(tmp_path / "secret.md")
    with pytest.raises(IssueNotFound, match=r"^no issue 998 in .*: a symbolic link, not followed$"):
        load_issue_by_number(issues, 998, follow_symlinks=False)
    assert load_issue_by_number(issues, "latest", follow_symlinks=False).number == 671
    assert load_issue_by_number(issues, 998).number == 998  # MAILER_ISSUES_DIR: the operator's own links
