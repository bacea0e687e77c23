"""The one allow-list sanitizer: what a hostile issue body or article page loses on its way to a mail,
the same whichever way it came in (Markdown or HTML fragment through render, a web page through issues)."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from mailer.config import load_settings
from mailer.domain import Issue
from mailer.issues import parse_html_page
from mailer.render import RenderOptions, render_issue
from mailer.sanitize import URL_SCHEMES, clean_html, is_safe_url

HOSTILE = (
    '<p>Read <a href="JaVaScRiPt:steal()">this</a>, <a href="java&#x0A;script:steal()">that</a> and '
    '<a href="vbscript:msgbox(1)">another</a>.</p>'
    '<p onmouseover="steal()" style="text-align:center">centred</p>'
    '<p style="text-align:left;background:url(https://t.example/px)">tracked</p>'
    '<img src="data:image/png;base64,AAAA" alt="tracker"><img src="/ok.png" alt="kept" onerror="steal()">'
    '<svg onload="steal()"><text>drawn</text></svg><math><mi>x</mi></math>'
    '<form action="https://evil.example/"><input name="password"><button>Send</button></form>'
    '<iframe srcdoc="&lt;script&gt;steal()&lt;/script&gt;">framed</iframe>'
    '<object data="x.swf">obj</object><embed src="x.swf"><template><p>tpl</p></template>'
    '<scr<script>ipt>alert(1)</script><style>p{color:red}</style><!-- editor: secret -->'
    '<p><a href="irc://irc.libera.chat/rust">chat</a> <a href="mailto:ed@example.org">mail</a></p>'
)
GONE = ("steal", "<script", "javascript", "vbscript", "data:image", "onload", "onerror", "onmouseover", "<svg",
        "drawn", "<math", "<form", "password", "Send", "<iframe", "framed", "<object", "obj",
        "<embed", "tpl", "<style", "color:red", "secret", "t.example/px")


def assert_harmless(html: str) -> None:
    lowered = html.lower()
    for needle in GONE:
        assert needle.lower() not in lowered, needle


def test_clean_html_keeps_the_words_and_drops_everything_active():
    cleaned = clean_html(HOSTILE)
    assert_harmless(cleaned)
    text = BeautifulSoup(cleaned, "html.parser").get_text(" ", strip=True)
    for words in ("Read this", "that", "another", "centred", "chat", "mail"):
        assert words in text
    assert 'style="text-align:center"' in cleaned  # table and paragraph alignment survive
    assert 'href="irc://irc.libera.chat/rust"' in cleaned and 'href="mailto:ed@example.org"' in cleaned
    assert 'src="/ok.png"' in cleaned


def test_a_rendered_mail_from_a_hostile_body_is_harmless_and_says_what_it_dropped():
    options = RenderOptions.from_settings(load_settings())
    rendered = render_issue(Issue(title="T", body=HOSTILE, body_format="html"), options)
    body = rendered.html[rendered.html.index('class="main"'):]
    assert_harmless(body)
    assert_harmless(rendered.text)
    assert 'href="irc://irc.libera.chat/rust"' in body
    assert 'src="https://this-week-in-rust.org/ok.png"' in body
    unsafe = [w for w in rendered.warnings if "unsafe target" in w]
    assert len(unsafe) == 3 and any("'another' (vbscript:msgbox(1))" in w for w in unsafe), rendered.warnings
    assert not any("link without a target" in w for w in rendered.warnings)
    assert any("image without a usable source" in w for w in rendered.warnings)


def test_a_web_page_goes_through_the_same_allow_list():
    page = f"<html><body><article><h1>This Week in Rust 9</h1>{HOSTILE}</article></body></html>"
    issue = parse_html_page(page)
    assert_harmless(issue.body)
    # the page keeps what a Markdown issue keeps: one scheme list for both
    assert 'href="irc://irc.libera.chat/rust"' in issue.body


@pytest.mark.parametrize("url", ["javascript:x", " JAVASCRIPT:x", "java\tscript:x", "java&#x09;script:x",
                                 "data:text/html,x", "file:///etc/passwd", "vbscript:x"])
def test_unsafe_urls_are_recognised(url):
    assert not is_safe_url(url)
    assert "href" not in clean_html(f'<a href="{url}">x</a>')


@pytest.mark.parametrize("url", ["https://x.example/", "/relative", "#anchor", "mailto:a@b.example"])
def test_safe_urls_are_kept(url):
    assert is_safe_url(url)
    assert "href" in clean_html(f'<a href="{url}">x</a>')


def test_every_listed_scheme_is_one_a_reader_can_follow():
    assert {"http", "https", "mailto"} <= URL_SCHEMES
    assert not {"javascript", "data", "vbscript", "file"} & URL_SCHEMES
