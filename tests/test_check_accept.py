"""`mailer check` and the warnings a newsletter has as its standard (mailer-check.toml).

The shipped example issue warned 7 times about TWiR's own header, footer and heading levels, so
every week's check told editors to look at things that were fine. Those are listed once; a clean
issue has no warnings, a new fault still warns, and an error is never accepted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "2026-03-25-this-week-in-rust.md"
ISSUE = """Title: This Week in Rust 903
Number: 903
Date: 2031-05-14

Hello from [our repository](https://github.com/example/newsletter).

## Updates

#### Compiler

* [a pull request](https://github.com/rust-lang/rust/pull/1)
* [the same one](https://github.com/rust-lang/rust/pull/1)
* [a blog post](https://blog.example.org/post) and [again](https://blog.example.org/post)

Bye from [our repository](https://github.com/example/newsletter).
"""
ACCEPT = """[accept]
duplicate-link = ["https://github.com/example/newsletter", "https://github.com/rust-lang/rust/pull/*"]
heading-skip = ["Compiler"]
"""


def check(*args: str):
    return CliRunner().invoke(app, ["check", *args])


@pytest.fixture
def issue_folder(mailer_env, tmp_path: Path) -> Path:
    folder = tmp_path / "twir" / "content"
    folder.mkdir(parents=True)
    (tmp_path / "twir" / ".git").mkdir()  # the repository's top: the search stops here
    (folder / "2031-05-14-this-week-in-rust.md").write_text(ISSUE)
    return folder


def test_the_shipped_example_issue_has_no_warnings(mailer_env) -> None:
    result = check(str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("0 errors, 0 warnings in 1 issue; 7 warnings accepted as "
                                    "standard by "), result.output
    assert "mailer-check.toml" in result.output


def test_accepted_patterns_silence_only_what_they_name(issue_folder: Path) -> None:
    issue = issue_folder / "2031-05-14-this-week-in-rust.md"
    before = check(str(issue), "--json")
    assert {f["code"] for f in json.loads(before.output)["findings"]} == {
        "duplicate-link", "heading-skip"}
    assert len(json.loads(before.output)["findings"]) == 4
    (issue_folder.parent / "mailer-check.toml").write_text(ACCEPT)  # found from the parent
    after = json.loads(check(str(issue), "--json").output)
    # the blog post linked twice is not the newsletter's habit: still a warning
    assert [(f["code"], f["subject"]) for f in after["findings"]] == [
        ("duplicate-link", "https://blog.example.org/post")]
    assert {f["subject"] for f in after["accepted"]} == {
        "https://github.com/example/newsletter", "https://github.com/rust-lang/rust/pull/1",
        "Compiler"}
    assert after["issues"][0]["accepted"] == 3
    plain = check(str(issue))
    assert "1 warning in 1 issue; 3 warnings accepted as standard by" in plain.output


def test_errors_are_never_accepted(issue_folder: Path) -> None:
    (issue_folder / "mailer-check.toml").write_text('[accept]\nimage-without-alt = ["*"]\n')
    result = check(str(issue_folder / "2031-05-14-this-week-in-rust.md"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {issue_folder / 'mailer-check.toml'}: 'image-without-alt' is not a warning that "
        "can be accepted (these can: duplicate-link, heading-skip, insecure-link, url-shortener; "
        "errors never)"]


@pytest.mark.parametrize("text, says", [
    ("[accept\n", "not valid TOML"),
    ('[accept]\nduplicate-link = [1, 2]\n', "must be a list of patterns"),
    ('[ignore]\nduplicate-link = ["*"]\n', "only an [accept] table is read here, not ignore"),
])
def test_a_broken_accept_file_is_one_line_naming_it(issue_folder: Path, text: str, says: str) -> None:
    (issue_folder / "mailer-check.toml").write_text(text)
    result = check(str(issue_folder / "2031-05-14-this-week-in-rust.md"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: {issue_folder / 'mailer-check.toml'}: ") and says in line


def test_the_search_stops_at_the_repository_top_and_accept_names_a_file(issue_folder: Path,
                                                                         tmp_path: Path) -> None:
    (tmp_path / "mailer-check.toml").write_text(ACCEPT)  # above .git: not this repository's
    issue = issue_folder / "2031-05-14-this-week-in-rust.md"
    assert json.loads(check(str(issue), "--json").output)["accepted"] == []
    named = json.loads(check(str(issue), "--json", "--accept", str(tmp_path / "mailer-check.toml"))
                       .output)
    assert len(named["accepted"]) == 3
    missing = check(str(issue), "--accept", str(tmp_path / "nope.toml"))
    assert missing.exit_code != 0 and "--accept: no such file" in missing.output


def test_the_shipped_accept_file_is_read_from_a_copy_of_the_examples(mailer_env, tmp_path) -> None:
    """Editors copy examples/mailer-check.toml into TWiR's content/ folder."""
    folder = tmp_path / "content"
    shutil.copytree(ROOT / "examples", folder)
    result = check(str(folder / EXAMPLE.name))
    assert "0 warnings" in result.output and str(folder / "mailer-check.toml") in result.output
