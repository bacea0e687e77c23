"""`mailer check`: every planted fault is found at its source line, clean issues pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.mailer_cli import mailer

FIXTURES = Path(__file__).parent / "fixtures" / "check"
CLEAN = sorted((FIXTURES / "clean").glob("*.md"))
LINKS = FIXTURES / "faulty" / "2031-03-19-this-week-in-rust.md"
HEADER = FIXTURES / "faulty" / "2031-03-26-this-week-in-rust.md"
BAD_DATE = FIXTURES / "faulty" / "2031-04-02-this-week-in-rust.md"
DUPLICATES = sorted((FIXTURES / "duplicate").glob("*.md"))

# (line, severity, code) of every fault planted in the fixtures, and nothing else.
PLANTED = {
    LINKS: {
        (10, "error", "unparsed-link"),
        (11, "error", "link-without-target"),
        (12, "error", "link-without-target"),
        (13, "error", "relative-link"),
        (14, "error", "relative-link"),
        (15, "error", "image-without-alt"),
        (16, "warning", "insecure-link"),
        (17, "warning", "url-shortener"),
        (18, "error", "broken-link"),
        (20, "warning", "heading-skip"),
        (23, "warning", "duplicate-link"),
    },
    HEADER: {
        (1, "error", "malformed-header"),  # no Date: line at all, because of line 3
        (2, "error", "malformed-header"),  # Number disagrees with the Title
        (3, "error", "malformed-header"),  # 'Date 2031-03-26' without its colon
    },
    BAD_DATE: {(3, "error", "malformed-header")},
    DUPLICATES[0]: {(2, "error", "duplicate-number")},
    DUPLICATES[1]: {(2, "error", "duplicate-number")},
}


def findings_by_file(stdout: str) -> dict[Path, set[tuple[int, str, str]]]:
    found: dict[Path, set] = {}
    for finding in json.loads(stdout)["findings"]:
        found.setdefault(Path(finding["path"]), set()).add(
            (finding["line"], finding["severity"], finding["code"]))
    return found


def test_every_planted_fault_is_found_at_its_line_and_clean_issues_pass(mailer_env):
    result = mailer(mailer_env, "check", "--json", *map(str, [*CLEAN, *PLANTED]))
    assert result.returncode == 1, result.stderr
    found = findings_by_file(result.stdout)
    for path, expected in PLANTED.items():
        assert found.get(path, set()) == expected, path.name
    for path in CLEAN:
        assert path not in found, (path.name, found.get(path))


def test_clean_issues_exit_zero_with_a_summary(mailer_env):
    result = mailer(mailer_env, "check", *map(str, CLEAN))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "0 errors, 0 warnings in 2 issues"


def test_lines_name_file_and_line_and_github_gets_annotations(mailer_env):
    plain = mailer(mailer_env, "check", str(LINKS))
    assert plain.returncode == 1
    assert (f"{LINKS}:10: error: Markdown link syntax left as text (closing parenthesis missing?): "
            "'[#130857](https://github.com/example/rust/. Overall") in plain.stdout
    assert "::error" not in plain.stdout
    github = mailer({**mailer_env, "GITHUB_ACTIONS": "true"}, "check", str(LINKS))
    assert f"::error file={LINKS},line=15::image without alt text: https://example.org/chart.png" in github.stdout
    assert f"::warning file={LINKS},line=16::link is not https: http://example.org/old-blog" in github.stdout


def test_an_html_part_over_the_budget_is_an_error(mailer_env, tmp_path):
    bulky = tmp_path / "bulky.md"
    items = "\n".join(f"* [item {n} with a long enough description to take room](https://example.org/items/{n})"
                      for n in range(1200))
    bulky.write_text(f"Title: This Week in Rust 700\nNumber: 700\nDate: 2031-05-07\n\n{items}\n")
    result = mailer(mailer_env, "check", "--json", str(bulky))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["issues"][0]["html_bytes"] > 90 * 1024
    assert [(f["line"], f["code"]) for f in report["findings"]] == [(1, "html-size")]
    # A budget is a setting; a small issue passes a default budget and fails a tiny one.
    small = mailer({**mailer_env, "MAILER_CHECK_HTML_BUDGET": "2048"}, "check", str(CLEAN[1]))
    assert small.returncode == 1 and "over the 2,048-byte budget" in small.stdout
    assert mailer(mailer_env, "check", str(CLEAN[1])).returncode == 0


def test_check_by_issue_number_finds_duplicates_in_the_issues_dir(mailer_env, tmp_path):
    issues = tmp_path / "issues"
    shutil.copytree(FIXTURES / "duplicate", issues)
    shutil.copy(CLEAN[0], issues)
    env = {**mailer_env, "MAILER_ISSUES_DIR": str(issues)}
    clean = mailer(env, "check", "--issue", "670")
    assert clean.returncode == 0, clean.stdout
    duplicate = mailer(env, "check", "--issue", "690", "--json")
    assert duplicate.returncode == 1
    assert {Path(f["path"]).name for f in json.loads(duplicate.stdout)["findings"]} == {p.name for p in DUPLICATES}
    missing = mailer(env, "check", "--issue", "999")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no issue 999")
    assert "Traceback" not in missing.stderr


def test_out_writes_the_rendered_mail_for_reviewers(mailer_env, tmp_path):
    result = mailer(mailer_env, "check", "--out", str(tmp_path / "rendered"), str(CLEAN[0]))
    assert result.returncode == 0, result.stdout
    assert (tmp_path / "rendered" / "670.html").read_text().startswith("<!doctype html>")
    assert "This Week in Rust 670" in (tmp_path / "rendered" / "670.txt").read_text()


def test_no_arguments_and_missing_files_are_one_line_errors(mailer_env, tmp_path):
    nothing = mailer(mailer_env, "check")
    assert nothing.returncode == 2 and nothing.stderr.startswith("error: say what to check")
    missing = mailer(mailer_env, "check", str(tmp_path / "nope.md"))
    assert missing.returncode == 1 and "no such issue file" in missing.stderr
    assert "Traceback" not in nothing.stderr + missing.stderr


@pytest.mark.corpus
def test_real_issues_have_no_errors_and_their_findings_point_at_real_lines(shared_dir):
    content = shared_dir / "twir" / "content"
    files = sorted(p for p in content.iterdir() if p.suffix in (".md", ".markdown"))
    result = mailer({}, "check", "--json", *map(str, files))
    report = json.loads(result.stdout)
    assert len(report["issues"]) == len(files)
    for finding in report["findings"]:
        lines = Path(finding["path"]).read_text(encoding="utf-8").splitlines()
        assert 1 <= finding["line"] <= len(lines)
        if finding["code"] in ("insecure-link", "duplicate-link"):
            url = finding["message"].split()[-1] if finding["code"] == "insecure-link" else finding["message"].split()[0]
            assert url.rstrip("/") in lines[finding["line"] - 1], finding


# Issue 24.6 and 24.7: what spam filters and readers see in links that look fine in the source.
SPAM_SIGNS = """Title: This Week in Rust 906
Number: 906
Date: 2031-04-09

Intro with [the archive](https://this-week-in-rust.org/blog/archives/).

* [A post] (https://blog.example.org/a-post/)
* [docs.rs](https://mirror.example.net/docs/)
* [https://crates.io/crates/serde](https://lib.example.com/serde)
* [blog.rust-lang.org](https://www.rust-lang.org/blog/)
* [@someone.bsky.social](https://bsky.app/profile/someone)
* `[not a link] (https://example.org/in-code)`
"""


def test_spaced_links_are_errors_and_words_naming_another_domain_are_warnings(mailer_env, tmp_path):
    path = tmp_path / "2031-04-09-this-week-in-rust.md"
    path.write_text(SPAM_SIGNS, encoding="utf-8")
    result = mailer(mailer_env, "check", "--json", str(path))
    assert result.returncode == 1, result.stderr
    findings = {(f["line"], f["severity"], f["code"]): f["message"]
                for f in json.loads(result.stdout)["findings"]}
    assert set(findings) == {(7, "error", "spaced-link"), (8, "warning", "link-text-domain"),
                             (9, "warning", "link-text-domain")}
    assert "[A post] (https://blog.example.org/a-post/)" in findings[(7, "error", "spaced-link")]
    assert "docs.rs" in findings[(8, "warning", "link-text-domain")]
    assert "mirror.example.net" in findings[(8, "warning", "link-text-domain")]
