"""Real TWiR issues (../shared/twir/content, 2013–2026) and the issue-644 standard.site record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import markdown
import pytest

from mailer.issues import find_issue_file, latest_issue_number, load_issue, load_issue_by_number

pytestmark = pytest.mark.corpus

# From ../shared/twir/README.md: the number each file's header claims (Number: or the title's).
EXPECTED_NUMBERS = {
    "2013-06-07-this-week-in-rust.markdown": 1,
    "2015-01-02-this-week-in-rust.md": 64,
    "2018-04-03-this-week-in-rust.md": 228,
    "2023-06-21-this-week-in-rust.md": 500,
    "2023-12-27-this-week-in-rust.md": 527,
    "2026-03-25-this-week-in-rust.md": 644,
    "2026-07-15-this-week-in-rust.md": 660,
    "2026-07-22-this-week-in-rust.md": 661,
    "2026-07-29-this-week-in-rust.md": 662,
    "2026-08-05-this-week-in-rust.md": 663,
    "2026-08-12-this-week-in-rust.md": 664,
    "2026-08-19-this-week-in-rust.md": 665,
}


def render(text: str) -> str:
    return markdown.markdown(text, extensions=["extra"], output_format="html5")


def headings(html: str) -> list[tuple[str, str]]:
    return [(level, re.sub(r"<[^>]+>", "", text).strip()) for level, text in re.findall(r"<h(\d)[^>]*>(.*?)</h\1>", html)]


@pytest.fixture
def content_dir(shared_dir: Path) -> Path:
    return shared_dir / "twir" / "content"


def test_every_corpus_file_loads_with_its_number(content_dir):
    files = sorted(p for p in content_dir.iterdir() if p.suffix in (".md", ".markdown"))
    assert {p.name for p in files} >= set(EXPECTED_NUMBERS)
    for path in files:
        issue = load_issue(path)
        if path.name in EXPECTED_NUMBERS:
            assert issue.number == EXPECTED_NUMBERS[path.name], path.name
        assert issue.title and issue.date and issue.body.strip(), path.name
        assert issue.web_url.endswith(f"/{issue.date:%Y/%m/%d}/this-week-in-rust-{issue.number}/"), path.name
        assert not issue.body.startswith(("Title:", "Number:", "Date:")), path.name


def test_every_corpus_number_is_found_by_its_header(content_dir):
    for name, number in EXPECTED_NUMBERS.items():
        assert find_issue_file(content_dir, number).name == name


def test_misdated_file_keeps_its_header_date(content_dir):
    issue = load_issue_by_number(content_dir, 64)
    assert issue.source_path.name == "2015-01-02-this-week-in-rust.md"
    assert str(issue.date) == "2015-01-05"


def test_latest_in_the_corpus_is_665(content_dir):
    assert latest_issue_number(content_dir) == 665
    assert load_issue_by_number(content_dir, "latest").source_path.name == "2026-08-19-this-week-in-rust.md"


def test_oldest_issue_keeps_tags_time_and_more_marker(content_dir):
    issue = load_issue_by_number(content_dir, 1)
    assert issue.published_at is not None and issue.published_at.strftime("%H:%M") == "18:46"
    assert "rust" in issue.tags
    assert "<!-- more -->" in issue.body


def test_seed_records_load(shared_dir):
    records = sorted((shared_dir / "seed").glob("*.json"))
    assert records
    for path in records:
        raw = json.loads(path.read_text(encoding="utf-8"))
        issue = load_issue(path)
        assert issue.source_kind == "standard-site" and issue.links_stripped
        assert issue.title == raw["title"]
        assert issue.web_url == raw["site"].rstrip("/") + raw["path"]
        assert issue.number is not None and str(issue.number) in raw["title"]


def test_markdown_web_url_matches_the_published_path(shared_dir):
    """TWiR's Pelican URL scheme, checked against the path the site itself published."""
    raw = json.loads((shared_dir / "seed" / "this-week-in-rust-644.standard-site.json").read_text(encoding="utf-8"))
    issue = load_issue_by_number(shared_dir / "twir" / "content", 644)
    assert issue.web_url == raw["site"] + raw["path"]


def test_seed_text_renders_with_the_structure_of_the_markdown_issue(shared_dir):
    record = load_issue(shared_dir / "seed" / "this-week-in-rust-644.standard-site.json")
    source = load_issue_by_number(shared_dir / "twir" / "content", 644)
    from_record, from_source = render(record.body), render(source.body)
    assert headings(from_record) == headings(from_source)
    assert from_record.count("<li>") == from_source.count("<li>")
    assert from_record.count("<tr>") == from_source.count("<tr>")
    assert from_record.count("<blockquote>") == from_source.count("<blockquote>") == 1
    # Plain text holds no markup: whatever looks like a tag in it must stay text.
    allowed = {"p", "h1", "h2", "h3", "h4", "h5", "ul", "li", "em", "strong", "code", "blockquote",
               "table", "thead", "tbody", "tr", "th", "td", "br"}
    assert set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", from_record)) <= allowed
