"""The plaintext part: a real text mail, written from the issue's structure."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from mailer.config import load_settings
from mailer.domain import Issue
from mailer.issues import load_issue
from mailer.render import RenderOptions, personalise, render_issue

QUIRKS = Path(__file__).parent / "fixtures" / "render" / "quirks-901.md"
URL = re.compile(r"<(?:https?|mailto):[^>\s]+>")


@pytest.fixture(scope="module")
def options() -> RenderOptions:
    return RenderOptions.from_settings(load_settings())


@pytest.fixture(scope="module")
def text(options) -> str:
    return render_issue(load_issue(QUIRKS), options).text


def test_headings_are_marked(text):
    assert "Updates from Rust Community\n---------------------------" in text
    assert "Quote of the Week\n=================" in text
    assert "\n### Official\n" in text
    assert "\n#### Compiler\n" in text


def test_lists_are_bulleted_and_nested(text):
    assert "* Announcing a release <https://blog.example.org/2031/02/01/release/>" in text
    assert "\n  * Rust Hack and Learn <https://www.meetup.com/rust-berlin/events/1/>" in text


def test_links_read_text_then_url(text):
    flowed = " ".join(text.split())  # wrapping may put the URL on the next line
    assert "the archive <https://this-week-in-rust.org/blog/archives/index.html>" in flowed
    assert "book <https://doc.rust-lang.org/book/>" in flowed


def test_lines_wrap_near_76_columns_and_urls_are_never_broken(text):
    for line in text.splitlines():
        if len(line) > 76:
            # only a URL (kept whole) may make a line long
            assert URL.search(line), line
    assert ("<https://example.org/a/very/long/path/that/goes/on/and/on/without/any/place/to/"
            "break/it/naturally/at/all/really>") in text


def test_no_html_tags_entities_or_markdown_left(text):
    without_urls = URL.sub("", text)
    assert not re.search(r"</?[a-z][a-z0-9]*[\s>/]", without_urls)
    assert html.unescape(without_urls) == without_urls
    assert "&nbsp;" not in text and "\u00a0" not in text
    for syntax in ("](", "**", "[dangling][nowhere]"):
        assert syntax not in text
    assert "Fearless concurrency" in text


def test_blockquotes_and_tables_stay_readable(text):
    assert "> Fearless concurrency is a promise the compiler keeps." in text
    table = [line for line in text.splitlines() if "Regressions" in line][0]
    assert table.split("|")[1].strip() == "1.0%"
    assert "(instructions:u)" in text


def test_images_show_their_alt_text(text):
    assert "[Ferris the crab]" in text


def test_inline_code_is_kept_verbatim(text):
    assert "`replace_is_method_with_if_let_method`" in text


def test_footer_carries_the_readers_unsubscribe_link(options):
    rendered = render_issue(load_issue(QUIRKS), options)
    _, text = personalise(rendered, unsubscribe_url="https://n.example/u/abc?x=1&y=2",
                          manage_url="https://n.example/m/abc")
    footer = text[text.rindex("\n-- \n"):]
    assert "Unsubscribe: <https://n.example/u/abc?x=1&y=2>" in footer
    assert "Manage your subscription: <https://n.example/m/abc>" in footer
    assert options.sender_line.split()[0] in footer


def test_wide_table_becomes_one_record_per_row(options):
    header = "| " + " | ".join(f"Column heading {n}" for n in range(6)) + " |"
    rule = "|" + "---|" * 6
    row = "| " + " | ".join(f"value {n}" for n in range(6)) + " |"
    text = render_issue(Issue(title="T", body=f"{header}\n{rule}\n{row}\n"), options).text
    assert "- Column heading 0: value 0; Column heading 1: value 1;" in text


def test_ordered_lists_keep_their_numbers(options):
    text = render_issue(Issue(title="T", body="1. first\n2. second\n"), options).text
    assert "1. first\n2. second" in text
