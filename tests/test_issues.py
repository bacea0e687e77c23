"""Finding and parsing issues: TWiR Markdown, standard.site records and rendered pages."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import markdown
import pytest

from mailer.errors import AmbiguousIssue, IssueNotFound, MalformedIssue
from mailer.issues import (
    find_issue_file,
    latest_issue_number,
    load_issue,
    load_issue_by_number,
    normalize_standard_text,
    parse_html_page,
    parse_markdown_issue,
    parse_standard_site,
    pelican_slugify,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "issues"
LIBRARY = FIXTURES / "library"
SAMPLE = ROOT / "examples" / "2026-03-25-this-week-in-rust.md"


def render(markdown_text: str) -> str:
    """The Markdown as TWiR's site renders it (Python-Markdown with `extra`)."""
    return markdown.markdown(markdown_text, extensions=["extra"], output_format="html5")


# --------------------------------------------------------------------------- TWiR Markdown


def test_old_markdown_issue_without_number_reads_its_number_from_the_title():
    issue = load_issue(LIBRARY / "2013-06-21-this-week-in-rust.markdown")
    assert issue.number == 3
    assert issue.title == "This Week In Rust 3"
    assert issue.date == date(2013, 6, 21)
    assert issue.published_at == datetime(2013, 6, 21, 9, 5, tzinfo=UTC)
    assert issue.tags == ("this-week-in-rust", "rust", "programming")
    assert issue.category == "This Week in Rust"
    assert issue.body_format == "markdown" and issue.source_kind == "markdown"
    assert issue.web_url == "https://this-week-in-rust.org/blog/2013/06/21/this-week-in-rust-3/"


def test_markdown_body_starts_after_the_header_and_keeps_editor_comments():
    issue = load_issue(LIBRARY / "2013-06-21-this-week-in-rust.markdown")
    assert issue.body.startswith("Hello and welcome to the third issue")
    assert "Title:" not in issue.body and "Tags:" not in issue.body
    assert "<!-- more -->" in issue.body
    html = render(issue.body)
    assert 'href="https://github.example.org/rust/issues/1234"' in html  # reference-style link resolved


def test_date_without_time_has_no_published_instant():
    issue = load_issue(LIBRARY / "2016-02-01-this-week-this-rust.md")
    assert issue.date == date(2016, 2, 3)
    assert issue.published_at is None
    assert issue.tags == ()


def test_web_url_uses_the_date_header_not_the_filename_and_honours_site_url():
    issue = load_issue(LIBRARY / "2016-02-01-this-week-this-rust.md", site_url="https://twir.example.org/")
    assert issue.web_url == "https://twir.example.org/blog/2016/02/03/this-week-in-rust-12/"


def test_slug_header_overrides_the_title_slug():
    issue = parse_markdown_issue("Title: This Week in Rust 9\nNumber: 9\nDate: 2026-01-01\nSlug: nine\n\nBody.\n")
    assert issue.web_url == "https://this-week-in-rust.org/blog/2026/01/01/nine/"


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("This Week in Rust 644", "this-week-in-rust-644"),
        ("This Week In Rust 1", "this-week-in-rust-1"),
        ("  The State of Rust: 2015 — Édition!  ", "the-state-of-rust-2015-edition"),
        ("a -- b   c", "a-b-c"),
    ],
)
def test_pelican_slugify(title, slug):
    assert pelican_slugify(title) == slug


def test_header_ends_at_the_first_line_that_is_not_a_header():
    issue = parse_markdown_issue("Title: This Week in Rust 8\nNumber: 8\nHello without a blank line.\n\nMore.\n")
    assert issue.number == 8
    assert issue.body.startswith("Hello without a blank line.")


def test_header_continuation_lines_and_byte_order_mark():
    text = "\ufeffTitle: This Week in Rust 10\nTags: one,\n    two\nNumber: 10  \n\nBody.\n"
    issue = parse_markdown_issue(text)
    assert issue.title == "This Week in Rust 10"
    assert issue.tags == ("one", "two")


def test_post_without_number_loads_directly():
    issue = load_issue(LIBRARY / "2015-06-01-state-of-rust.md")
    assert issue.number is None
    assert issue.category == "Rust"


# --------------------------------------------------------------------------- finding files


def test_find_by_number_header_not_by_filename():
    assert find_issue_file(LIBRARY, 12) == LIBRARY / "2016-02-01-this-week-this-rust.md"
    assert find_issue_file(LIBRARY, 20) == LIBRARY / "2026-01-07-this-week-in-rust.md"
    with pytest.raises(IssueNotFound):
        find_issue_file(LIBRARY, 14)  # only a filename says 14


def test_find_old_markdown_issue_by_title_number():
    assert find_issue_file(LIBRARY, 3) == LIBRARY / "2013-06-21-this-week-in-rust.markdown"


def test_other_extensions_are_never_issues():
    with pytest.raises(IssueNotFound):
        find_issue_file(LIBRARY, 2)  # only the .rst file claims it


def test_latest_is_the_highest_number_claimed():
    assert latest_issue_number(LIBRARY) == 21
    assert load_issue_by_number(LIBRARY, "latest").number == 21
    assert load_issue_by_number(LIBRARY, " LATEST ").number == 21


@pytest.mark.parametrize("number", [12, "12", " 12 "])
def test_load_by_number_accepts_ints_and_digit_strings(number):
    issue = load_issue_by_number(LIBRARY, number)
    assert issue.number == 12
    assert issue.source_path == LIBRARY / "2016-02-01-this-week-this-rust.md"


@pytest.mark.parametrize("number", ["six", "-3", "0", 0, -1, "12a", "１２", True, 1.5])
def test_load_by_number_rejects_what_is_not_an_issue_number(number):
    with pytest.raises(IssueNotFound, match="not an issue number.*644.*latest"):
        load_issue_by_number(LIBRARY, number)


def test_not_found_names_the_directory_and_the_nearest_numbers():
    with pytest.raises(IssueNotFound) as caught:
        find_issue_file(LIBRARY, 19)
    message = str(caught.value)
    assert str(LIBRARY) in message
    assert "no issue 19" in message
    assert "nearest: 12, 20, 21" in message


def test_missing_directory_names_it_and_the_setting(tmp_path):
    missing = tmp_path / "nowhere"
    for call in (lambda: find_issue_file(missing, 1), lambda: latest_issue_number(missing)):
        with pytest.raises(IssueNotFound, match=re.escape(str(missing)) + ".*MAILER_ISSUES_DIR"):
            call()


def test_empty_directory_has_no_latest(tmp_path):
    with pytest.raises(IssueNotFound, match="no issues found in " + re.escape(str(tmp_path))):
        load_issue_by_number(tmp_path, "latest")
    with pytest.raises(IssueNotFound, match="holds no issue files"):
        find_issue_file(tmp_path, 644)


def test_two_files_claiming_one_number_are_both_named():
    folder = FIXTURES / "ambiguous"
    with pytest.raises(AmbiguousIssue) as caught:
        find_issue_file(folder, 30)
    message = str(caught.value)
    assert "2026-02-04-this-week-in-rust.md" in message
    assert "2026-02-05-this-week-in-rust.markdown" in message
    assert find_issue_file(folder, 31).name == "2026-02-11-this-week-in-rust.md"


def test_an_unreadable_header_does_not_block_other_issues_but_is_named_when_nothing_matches():
    folder = FIXTURES / "unreadable"
    assert find_issue_file(folder, 50).name == "2026-03-04-this-week-in-rust.md"
    with pytest.raises(IssueNotFound) as caught:
        find_issue_file(folder, 51)
    assert "2026-03-11-this-week-in-rust.md line 2" in str(caught.value)
    assert "'fifty-one' is not a whole number" in str(caught.value)


def test_scanning_reads_only_headers(tmp_path):
    # A body that is not UTF-8 does not hide the issue from the scan; loading it says what is wrong.
    path = tmp_path / "2026-04-01-this-week-in-rust.md"
    path.write_bytes(b"Title: This Week in Rust 70\nNumber: 70\nDate: 2026-04-01\n\nBody \xff\xfe broken.\n")
    assert find_issue_file(tmp_path, 70) == path
    with pytest.raises(MalformedIssue, match=re.escape(str(path)) + " is not UTF-8"):
        load_issue_by_number(tmp_path, 70)


def test_files_added_later_are_found(tmp_path):
    shutil.copy(LIBRARY / "2026-01-07-this-week-in-rust.md", tmp_path / "a.md")
    assert latest_issue_number(tmp_path) == 20
    (tmp_path / "b.markdown").write_text("Title: This Week in Rust 99\nDate: 2026-05-01\n\nNew.\n")
    assert latest_issue_number(tmp_path) == 99


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("no-title.md", r"no-title\.md: no 'Title:' header line"),
        ("no-header.md", r"no-header\.md: no 'Title:' header line"),
        ("bad-date.md", r"bad-date\.md line 3: Date '2026-13-45' is not a date \(write YYYY-MM-DD"),
        ("bad-number.md", r"bad-number\.md line 2: Number 'forty-two' is not a whole number"),
        ("empty.md", r"empty\.md is empty"),
        ("blank.md", r"blank\.md is empty"),
    ],
)
def test_malformed_headers_name_the_file_and_line(name, expected):
    with pytest.raises(MalformedIssue, match=expected):
        load_issue(FIXTURES / "malformed" / name)


def test_source_path_that_does_not_exist_names_the_path(tmp_path):
    missing = tmp_path / "issue-644.md"
    with pytest.raises(IssueNotFound, match="no such issue file: " + re.escape(str(missing))):
        load_issue(missing)


def test_source_path_that_is_a_directory(tmp_path):
    with pytest.raises(IssueNotFound, match="is not a file"):
        load_issue(tmp_path)


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "huge.md"
    path.write_text("Title: This Week in Rust 1\n\n" + "x" * (6 * 1024 * 1024))
    with pytest.raises(MalformedIssue, match="too large"):
        load_issue(path)


# --------------------------------------------------------------------------- the sample issue


@pytest.fixture(scope="module")
def sample():
    return load_issue(SAMPLE)


def test_sample_issue_is_644_and_found_in_examples(sample):
    assert find_issue_file(SAMPLE.parent, 644) == SAMPLE
    assert sample.number == 644
    assert sample.title == "This Week in Rust 644"
    assert sample.date == date(2026, 3, 25)
    assert sample.web_url == "https://this-week-in-rust.org/blog/2026/03/25/this-week-in-rust-644/"


def test_sample_issue_says_it_is_a_sample_in_its_first_comment(sample):
    first_comment = re.search(r"<!--(.*?)-->", sample.body, re.S).group(1)
    assert "sample" in first_comment.lower() and "mailer" in first_comment
    assert "\n" not in first_comment.strip()


def test_sample_issue_has_the_size_of_a_real_issue(sample):
    size = len(SAMPLE.read_bytes())
    assert 28_000 <= size <= 40_000
    html = render(sample.body)
    assert len(re.findall(r"<a href=", html)) >= 250


@pytest.mark.parametrize(
    "quirk",
    [
        "\n## Updates from Rust Community\n",
        "\n### Official\n",
        "\n### Newsletters\n",
        "\n## Crate of the Week\n",
        "\n## Call for Participation",
        "<!-- CFPs go here",
        "* [video] [",
        "* [audio] [",
        "| Regressions ❌ <br /> (primary)",
        "][1]",
        "\n[1]: https://",
        "<small>",
        "&nbsp;",
        "\n    * [**",
        "\n#### Compiler\n",
        "\n##### [",
        "\n# Quote of the Week\n",
        "\n> ",
        "`replace_is_method_with_if_let_method`",
        "\n## Upcoming Events\n",
        "\n### Europe\n",
        "\n## Jobs\n",
        "<!-- more -->",
    ],
)
def test_sample_issue_exercises_every_quirk(sample, quirk):
    assert quirk in sample.body


def test_sample_issue_renders_every_structure(sample):
    html = render(sample.body)
    for tag in ("<h1", "<h2", "<h3", "<h4", "<h5", "<table", "<blockquote", "<small>", "<br />", "<ul>\n<li>"):
        assert tag in html, tag
    assert re.search(r"<li>[^<]*<a [^>]*>[^<]*</a>\s*<ul>", html), "nested event lists"
    assert len(re.findall(r'href="https?://[^"]{110,}"', html)) >= 3, "long URLs"


# --------------------------------------------------------------------------- standard.site


RECORD = FIXTURES / "records" / "this-week-in-rust-630.standard-site.json"


def test_standard_site_record_fields():
    issue = load_issue(RECORD)
    assert issue.title == "This Week in Rust 630"
    assert issue.number == 630
    assert issue.body_format == "markdown" and issue.source_kind == "standard-site"
    assert issue.links_stripped is True
    assert issue.web_url == "https://this-week-in-rust.org/blog/2026/02/04/this-week-in-rust-630/"
    assert issue.published_at == datetime(2026, 2, 5, 3, 30, tzinfo=UTC)
    assert issue.date == date(2026, 2, 4)  # the issue's day from its path, not the UTC instant's
    assert issue.category == "This Week in Rust"
    assert issue.source_path == RECORD


def test_standard_site_text_renders_as_the_article():
    html = render(load_issue(RECORD).body)
    assert "<h2>Updates from Rust Community</h2>" in html
    assert "<h1>Quote of the Week</h1>" in html
    assert "fabs::&lt;F&gt;" in html  # literal text, not a stray <F> tag
    assert "From&lt;{i64, u64}&gt; for f128 &amp; friends" in html
    assert "<code>Vec&lt;T&gt;</code>" in html and "<code>call-for-testing</code>" in html
    assert "<p>One regression from #152001 this week.\n#152002 was reverted.</p>" in html  # not headings
    assert "<td>Regressions ❌<br />(primary)</td>" in html  # table row split at <br /> is whole again
    assert html.count("<tr>") == 3
    assert "<strong>Summary</strong>:" in html
    assert re.search(r"<li>2026-02-04 \| Berlin, DE \| Rust Berlin<ul>\s*<li>Rust Hack &amp; Learn</li>", html)
    assert "<blockquote>" in html


def test_standard_site_flattened_paragraphs_are_restored():
    flat = "Intro line one.\n## Heading\nA paragraph.\nAnother paragraph.\n* item one\n* item two\nAfter the list."
    html = render(normalize_standard_text(flat))
    assert "<p>Intro line one.</p>" in html
    assert "<h2>Heading</h2>" in html
    assert "<p>A paragraph.</p>\n<p>Another paragraph.</p>" in html
    assert "<li>item one</li>\n<li>item two</li>" in html
    assert "<p>After the list.</p>" in html


def test_get_record_response_is_unwrapped():
    issue = load_issue(FIXTURES / "records" / "get-record-response.json")
    assert issue.number == 630


def test_record_as_dict_or_json_text():
    record = json.loads(RECORD.read_text())
    assert parse_standard_site(record).body == parse_standard_site(json.dumps(record)).body


def test_record_with_a_publication_reference_has_no_web_url():
    record = json.loads(RECORD.read_text()) | {"site": "at://did:plc:fixture/site.standard.publication/self"}
    assert parse_standard_site(record).web_url is None
    record["site"] = "javascript:alert(1)//"
    assert parse_standard_site(record).web_url is None


def test_record_missing_text_content_names_file_and_field():
    path = FIXTURES / "records" / "missing-text.json"
    with pytest.raises(MalformedIssue, match=re.escape(str(path)) + " has no 'textContent'"):
        load_issue(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"title": ""}, "has no 'title'"),
        ({"title": None}, "has no 'title'"),
        ({"publishedAt": "last Wednesday"}, "publishedAt 'last Wednesday' is not an ISO 8601"),
        ({"$type": "app.bsky.feed.post"}, "is a 'app.bsky.feed.post' record, not a site.standard.document"),
    ],
)
def test_malformed_records(change, expected):
    record = json.loads(RECORD.read_text()) | change
    with pytest.raises(MalformedIssue, match=re.escape(expected)):
        parse_standard_site(record)


def test_record_that_is_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"title": "This Week in Rust 1",')
    with pytest.raises(MalformedIssue, match=re.escape(str(path)) + " is not valid JSON"):
        load_issue(path)
    path.write_text("[1, 2]")
    with pytest.raises(MalformedIssue, match="not a JSON object"):
        load_issue(path)


# --------------------------------------------------------------------------- rendered page


PAGE = FIXTURES / "pages" / "this-week-in-rust-631.html"


@pytest.fixture(scope="module")
def page_issue():
    return load_issue(PAGE)


def test_html_page_metadata(page_issue):
    assert page_issue.title == "This Week in Rust 631"
    assert page_issue.number == 631
    assert page_issue.body_format == "html" and page_issue.source_kind == "html"
    assert page_issue.date == date(2026, 2, 11)
    assert page_issue.published_at == datetime(2026, 2, 11, 5, 0, tzinfo=UTC)
    assert page_issue.web_url == "https://this-week-in-rust.org/blog/2026/02/11/this-week-in-rust-631/"
    assert page_issue.category == "This Week in Rust"
    assert page_issue.links_stripped is False


def test_html_page_body_is_the_article_text_only(page_issue):
    body = page_issue.body
    assert body.startswith("<p>Hello and welcome")  # the title heading is the email's job
    assert 'id="quote-of-the-week"' in body  # other headings stay
    assert "Archives" not in body and "Tags:" not in body  # nav and footer are not the article
    assert "<!--" not in body


def test_html_page_body_loses_everything_active(page_issue):
    body = page_issue.body.lower()
    for needle in ("<script", "<style", "<iframe", "<form", "<input", "onclick", "onerror", "javascript:", "script:alert"):
        assert needle not in body, needle
    assert ">A link that must lose its target</a>" in page_issue.body
    assert "<a>An obfuscated one</a>" in page_issue.body


def test_html_page_links_become_absolute(page_issue):
    body = page_issue.body
    assert 'href="https://this-week-in-rust.org/blog/2026/02/04/this-week-in-rust-630/"' in body
    assert 'src="https://this-week-in-rust.org/images/ferris.png"' in body
    assert 'alt="Ferris the crab"' in body
    assert 'href="#updates"' in body  # in-page anchors stay as they are
    assert 'href="https://blog.example.org/fixture-631/"' in body


def test_html_page_falls_back_to_main_and_the_title_element():
    issue = load_issue(FIXTURES / "pages" / "main-only.htm")
    assert issue.title == "This Week in Rust 632"
    assert issue.number == 632
    assert issue.date == date(2026, 2, 18) and issue.published_at is None
    assert issue.web_url is None
    assert "<code>main</code>" in issue.body
    assert 'href="https://this-week-in-rust.org/crates/fixture"' in issue.body


@pytest.mark.parametrize(
    ("wrapper", "chosen"),
    [
        ('<main><p>main</p><div itemprop="articleBody"><p>itemprop</p></div></main>', "itemprop"),
        ('<main><p>main</p><div class="entry-content"><p>entry</p></div></main>', "entry"),
        ('<div class="post-content"><p>post</p></div><div class="entry-content"><p>entry</p></div>', "post"),
        ('<main><p>main</p></main><article><p>article</p></article>', "article"),
    ],
)
def test_html_article_selector_order(wrapper, chosen):
    issue = parse_html_page(f"<html><head><title>This Week in Rust 7</title></head><body>{wrapper}</body></html>")
    assert issue.body.strip() == f"<p>{chosen}</p>"


def test_page_without_article_is_malformed():
    path = FIXTURES / "pages" / "no-article.html"
    with pytest.raises(MalformedIssue, match=re.escape(str(path)) + " has no article body"):
        load_issue(path)


def test_page_with_a_broken_date_is_malformed():
    page = '<html><body><article><h1>This Week in Rust 5</h1><time datetime="soon">x</time><p>t</p></article></body></html>'
    with pytest.raises(MalformedIssue, match="date 'soon' is not an ISO 8601"):
        parse_html_page(page)


# --------------------------------------------------------------------------- format detection


def test_format_is_detected_from_content_when_the_extension_says_nothing(tmp_path):
    (tmp_path / "record").write_text(RECORD.read_text())
    (tmp_path / "page").write_text(PAGE.read_text())
    (tmp_path / "issue").write_text((LIBRARY / "2026-01-07-this-week-in-rust.md").read_text())
    assert load_issue(tmp_path / "record").source_kind == "standard-site"
    assert load_issue(tmp_path / "page").source_kind == "html"
    assert load_issue(tmp_path / "issue").source_kind == "markdown"


def test_not_found_in_a_folder_of_one_issue_names_it():
    with pytest.raises(IssueNotFound, match=re.escape(f"no issue 643 in {SAMPLE.parent} (it holds only issue 644)")):
        load_issue_by_number(SAMPLE.parent, 643)


def test_cli_reports_a_missing_source_in_one_line(mailer_env, tmp_path):
    import os
    import subprocess
    import sys

    mailer = Path(sys.executable).with_name("mailer")  # the console script beside this interpreter
    missing = tmp_path / "no-such-issue.md"
    result = subprocess.run(
        [str(mailer), "render", "--source", str(missing), "--out", str(tmp_path / "out")],
        env={**os.environ, **mailer_env}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: no such issue file: {missing}"
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()
