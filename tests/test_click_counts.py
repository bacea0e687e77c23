"""Link counts, aggregate only (issue 25 §1): the HTML part as the counter rewrites it.

Rendered from the shipped issue 644: what a reader's mail links to with MAILER_CLICK_COUNTS off
and on, and that nothing in a counted link tells one reader from another.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from bs4 import BeautifulSoup

from mailer.config import DEFAULT_ISSUES_DIR, load_settings
from mailer.figures import GMAIL_CLIP_BYTES
from mailer.issues import load_issue
from mailer.render import RenderOptions, personalise, render_issue
from mailer.render.links import count_links

ISSUE_644 = DEFAULT_ISSUES_DIR / "2026-03-25-this-week-in-rust.md"
BASE = "https://twir.example.org"
COUNTER = re.compile(r"^https://twir\.example\.org/l/644/(\d+)$")


@pytest.fixture(scope="module")
def options_off() -> RenderOptions:
    return dataclasses.replace(RenderOptions.from_settings(load_settings()), base_url=BASE)


@pytest.fixture(scope="module")
def off(options_off):
    return render_issue(load_issue(ISSUE_644), options_off)


@pytest.fixture(scope="module")
def on(options_off):
    return render_issue(load_issue(ISSUE_644), dataclasses.replace(options_off, click_counts=True))


def hrefs(html: str) -> list[str]:
    return [a["href"] for a in BeautifulSoup(html, "html.parser").find_all("a", href=True)]


def reader_copy(rendered, reader: str) -> str:
    html, _ = personalise(rendered, unsubscribe_url=f"{BASE}/u/{reader}",
                          manage_url=f"{BASE}/m/{reader}")
    return html


def test_off_is_the_default_and_leaves_links_as_written(off):
    assert load_settings().click_counts is False
    assert off.links == ()
    assert not any(COUNTER.match(h) for h in hrefs(off.html))


def test_on_points_every_outside_link_at_the_counter_in_order(off, on):
    outside = [h for h in hrefs(off.html) if h.startswith("http") and not h.startswith(BASE)]
    assert len(outside) > 50  # 644 is a real issue, not a toy
    counted = [int(m.group(1)) for h in hrefs(on.html) if (m := COUNTER.match(h))]
    assert counted == list(range(1, len(outside) + 1))
    assert [link.url for link in on.links] == outside


def test_the_counter_records_words_and_section_of_each_link(on):
    sections = {link.section for link in on.links}
    assert {"Crate of the Week", "Jobs", "Upcoming Events"} <= sections
    assert all(link.text for link in on.links[:20])


def test_unsubscribe_and_manage_are_never_rewritten(on):
    html = reader_copy(on, "reader-a")
    assert f"{BASE}/u/reader-a" in hrefs(html)
    assert f"{BASE}/m/reader-a" in hrefs(html)


def test_two_readers_copies_differ_only_in_their_own_links(on):
    a, b = reader_copy(on, "reader-a"), reader_copy(on, "reader-b")
    assert a != b
    assert a.replace("reader-a", "X") == b.replace("reader-b", "X")


def test_plaintext_keeps_the_original_urls(off, on):
    assert on.text == off.text


def test_still_under_gmails_clip_with_every_link_rewritten(on):
    assert on.html_bytes < GMAIL_CLIP_BYTES
    assert not any("clip" in w.lower() for w in on.warnings)


def test_own_host_mailto_and_fragment_links_stay():
    html = ('<h2>News</h2><a href="https://x.example/a">A</a><a href="mailto:e@x.example">m</a>'
            f'<a href="#top">t</a><a href="{BASE}/confirm/abc">c</a>')
    out, links = count_links(html, base_url=BASE, issue_number=7)
    assert [(ln.n, ln.url, ln.text, ln.section) for ln in links] == [(1, "https://x.example/a", "A", "News")]
    assert f'href="{BASE}/l/7/1"' in out
    assert 'href="mailto:e@x.example"' in out and 'href="#top"' in out and f"{BASE}/confirm/abc" in out
