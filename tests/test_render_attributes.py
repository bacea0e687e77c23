"""Attribute values an issue controls (link titles, image alt text, ids) stay attribute values all
the way to the reader's mail (issue 19, item 1).

mjml-python writes a ``"`` inside an attribute back as ``\\"``, which is no HTML escape: the rest of
the value used to become attributes of its own, and premailer wrote them out as real ones (an
``onmouseover`` handler, a ``position:fixed`` overlay). Each test renders through the whole
pipeline (Markdown or HTML page or ``site.standard.document`` record → sanitizer → MJML →
premailer) and reads the finished HTML with lxml, the parser premailer itself uses.
"""

from __future__ import annotations

import html as html_lib
import json
import re

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from mailer.config import load_settings
from mailer.domain import Issue
from mailer.issues import parse_html_page, parse_standard_site
from mailer.render import RenderOptions, render_issue
from mailer.render.body import IMAGE_STYLE

# Every attribute name the shipped template and MJML put in a mail, and the sanitizer's own.
EXPECTED_NAMES = frozenset({
    "align", "alt", "aria-label", "aria-roledescription", "border", "cellpadding", "cellspacing",
    "class", "colspan", "content", "datetime", "dir", "height", "href", "http-equiv", "id", "lang",
    "media", "name", "role", "rowspan", "scope", "src", "start", "style", "title", "type", "width",
    "xmlns", "xmlns:o", "xmlns:v",
})
HOSTILE_STYLE = re.compile(r"position|url\s*\(|expression|behavior|binding|javascript", re.I)
LINK_PAYLOAD = '[x](https://ok.example/ "a\\" onmouseover=alert(1)// ")'
IMG_PAYLOAD = ("<img src=\"https://ok.example/i.png\" alt='x\" onerror=alert(1) "
               "style=position:fixed;inset:0;background:url(https://t.example/px)'>")


@pytest.fixture(scope="module")
def options() -> RenderOptions:
    return RenderOptions.from_settings(load_settings())


def markdown_issue(body: str) -> Issue:
    return Issue(title="This Week in Rust 901", body=f"Hello.\n\n{body}\n", number=901)


def elements(html: str):
    return list(lxml.html.document_fromstring(html).iter(lxml.etree.Element))


def assert_attributes_harmless(html: str) -> None:
    """Every attribute is one a mail is made of; no handler, no style the template did not write."""
    for element in elements(html):
        for name, value in element.attrib.items():
            assert name in EXPECTED_NAMES, f"<{element.tag} {name}={value!r}>"
            if name == "style":
                assert not HOSTILE_STYLE.search(value), f"<{element.tag} style={value!r}>"


def body_element(html: str, tag: str, **attributes: str):
    """The one ``tag`` in the issue's body whose attributes contain ``attributes``."""
    found = [element for element in elements(html) if element.tag == tag
             and all(attributes[key] in (element.get(key) or "") for key in attributes)]
    assert len(found) == 1, [lxml.html.tostring(e) for e in found]
    return found[0]


def test_a_quote_in_a_markdown_link_title_stays_in_the_title(options):
    rendered = render_issue(markdown_issue(LINK_PAYLOAD), options)
    assert_attributes_harmless(rendered.html)
    link = body_element(rendered.html, "a", href="https://ok.example/")
    assert dict(link.attrib) == {"href": "https://ok.example/",
                                 "title": 'a\\" onmouseover=alert(1)//'}
    assert "onmouseover=" not in rendered.mjml.replace("&#34; onmouseover=", "")


def test_a_quote_in_raw_image_alt_text_stays_in_the_alt_text(options):
    rendered = render_issue(markdown_issue(IMG_PAYLOAD), options)
    assert_attributes_harmless(rendered.html)
    image = body_element(rendered.html, "img", src="https://ok.example/i.png")
    assert image.get("alt") == ('x" onerror=alert(1) style=position:fixed;inset:0;'
                                "background:url(https://t.example/px)")
    assert image.get("style") == IMAGE_STYLE  # the mail's own style, not the one in the alt text


def test_characters_mjml_escapes_its_own_way_reach_the_reader_unchanged(options):
    """mjml-python writes a backslash, a newline or a no-break space in an attribute as a Rust
    escape (``\\\\``, ``\\n``, ``\\u{a0}``): what the editor wrote must be what the reader gets."""
    title = "C:\\temp\u00a0\u201cquoted\u201d\nnext line \u202e"
    rendered = render_issue(markdown_issue(
        f'<a href="https://ok.example/" title="{html_lib.escape(title)}">x</a>'), options)
    assert body_element(rendered.html, "a", href="https://ok.example/").get("title") == title


# -- the property: any value, any way in -------------------------------------------------------

PIECES = st.sampled_from([
    '"', "'", "\\", '\\"', "\\\\", " onmouseover=alert(1)", " onerror=alert(1)//", "/",
    " style=position:fixed;background:url(https://t.example/px)", ">", "<", "=", "`",
    "<img src=x onerror=alert(1)>", "\n", "\t", "&quot;", "&#34;", "&#x27;", "&amp;", "&", "&lt;",
    "\u00a0", "\u202e", "é", "--", "<!--", "]]>", "{{ x }}", "%%", "x",
])
HOSTILE_VALUES = st.lists(PIECES | st.text(alphabet="ab \"'\\<>=/&;:", max_size=4),
                          min_size=1, max_size=8).map("".join)


def via_markdown_title(value: str) -> Issue:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return markdown_issue(f'[x](https://ok.example/ "{escaped}")')


def via_raw_html(value: str) -> Issue:
    # One Markdown block, and no tab for Markdown to expand: the HTML is the editor's own.
    quoted = html_lib.escape(value, quote=True).replace("\n", "&#10;").replace("\t", "&#9;")
    return markdown_issue(f'<p><a href="https://ok.example/" title="{quoted}" id="{quoted}">x</a>'
                          f'<img src="https://ok.example/i.png" alt="{quoted}"></p>')


def via_html_page(value: str) -> Issue:
    quoted = html_lib.escape(value, quote=True)
    page = (f"<html><head><title>This Week in Rust 901</title></head><body><article>"
            f"<h1>This Week in Rust 901</h1><p lang=\"{quoted}\">Hello "
            f"<a href=\"https://ok.example/\" title=\"{quoted}\">x</a>"
            f"<img src=\"https://ok.example/i.png\" alt=\"{quoted}\"></p></article></body></html>")
    return parse_html_page(page)


def via_record(value: str) -> Issue:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    record = {"$type": "site.standard.document", "title": "This Week in Rust 901",
              "textContent": f'Hello.\n\n[x](https://ok.example/ "{escaped}") and ![{escaped}](https://ok.example/i.png)'}
    return parse_standard_site(json.dumps(record))


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE_VALUES, source=st.sampled_from([via_markdown_title, via_raw_html,
                                                     via_html_page, via_record]))
def test_hostile_attribute_values_never_become_attributes(options, value, source):
    rendered = render_issue(source(value), options)
    assert_attributes_harmless(rendered.html)
    if source in (via_raw_html, via_html_page):  # what the editor wrote is what the reader gets
        link = body_element(rendered.html, "a", href="https://ok.example/")
        image = body_element(rendered.html, "img", src="https://ok.example/i.png")
        assert (link.get("title") or "") == value  # an empty title is dropped
        assert image.get("alt") == value.strip()


# -- the last pass: whatever a stage after the sanitizer adds, the reader does not get ---------

def test_the_finished_html_loses_what_a_later_stage_added_and_says_so(options):
    """The mail as premailer wrote it on main for the two payloads; the last pass repairs it."""
    from mailer.render.allowlist import enforce_allow_list

    clean = render_issue(markdown_issue("Fine [link](https://ok.example/)."), options).html
    hostile = clean.replace(
        '<a href="https://ok.example/">',
        '<a href="https://ok.example/" title="a\\\\\\" onmouseover=\'alert(1)//"\'>'
        '<img alt="x\\" onerror="alert(1)" style=\'position:fixed;inset:0;color:red"\' '
        'src="https://ok.example/i.png" SRC="javascript:alert(2)" onload=x>'
        '<a href="javascript:alert(3)" style="text-align:center;background:url(https://t.example/px)">'
        '<blink>words</blink></a>', 1)
    assert enforce_allow_list(clean) == (clean, [])  # the template's own mail is left byte for byte
    repaired, warnings = enforce_allow_list(hostile)
    assert_attributes_harmless(repaired)
    assert '<a href="https://ok.example/" title="a\\\\\\">' in repaired
    assert '<img alt="x\\" style="inset:0;color:red&quot;" src="https://ok.example/i.png">' in repaired
    assert '<a style="text-align:center">words</a>' in repaired
    assert len(warnings) == 1 and "onmouseover on <a>" in warnings[0] and "<blink>" in warnings[0]


@pytest.mark.parametrize("element", ["<script>alert(1)</script>", "<iframe src=x></iframe>",
                                     "<style>p{}</style>", '<meta http-equiv="refresh" content="0">'])
def test_an_element_that_could_run_or_load_in_the_body_stops_the_render(options, element):
    from mailer.errors import RenderError
    from mailer.render.allowlist import enforce_allow_list

    clean = render_issue(markdown_issue("Fine."), options).html
    with pytest.raises(RenderError, match="no mail may carry"):
        enforce_allow_list(clean.replace("<p>Fine.</p>", f"<p>Fine.{element}</p>", 1))


def test_terminal_escapes_pasted_into_an_issue_do_not_stop_the_render(options):
    """An ESC in the text (a pasted terminal line) made mjml-python refuse the whole issue."""
    rendered = render_issue(markdown_issue("Run `cargo build` \x1b[1;32mFinished\x1b[0m in 2s."), options)
    assert "Finished" in rendered.html and "\x1b" not in rendered.html
