"""The rendered mail in headless Chromium: no sideways scrolling on a phone, readable colours in
light and dark mode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailer.config import load_settings
from mailer.issues import load_issue
from mailer.render import RenderOptions, personalise, render_issue

pytestmark = [pytest.mark.browser, pytest.mark.peer]

ROOT = Path(__file__).resolve().parent.parent
ISSUES = [ROOT / "tests" / "fixtures" / "render" / "quirks-901.md",
          ROOT / "examples" / "2026-03-25-this-week-in-rust.md"]

# For each sample element: its colour and the first opaque background behind it.
COLOURS_JS = """
() => {
  const opaque = (el) => {
    for (; el; el = el.parentElement) {
      const bg = getComputedStyle(el).backgroundColor;
      if (bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  const pick = {
    body: document.querySelector('.main .txt p'),
    link: document.querySelector('.main .txt li a'),
    heading: document.querySelector('.main h2'),
    code: document.querySelector('.main code'),
    title: document.querySelector('.hdr h1'),
    issue_line: document.querySelector('.hdr .meta'),
    web_link: document.querySelector('.hdr a'),
    footer: document.querySelector('.ftr p'),
    footer_link: document.querySelector('.ftr a'),
    table: document.querySelector('table.data td'),
  };
  const out = {};
  for (const [name, el] of Object.entries(pick)) {
    if (el) out[name] = [getComputedStyle(el).color, opaque(el)];
  }
  out.page = ['', opaque(document.querySelector('.main td'))];
  out.header = ['', opaque(document.querySelector('.hdr td'))];
  return out;
}
"""


def rgb(css: str) -> tuple[float, float, float]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


def luminance(css: str) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    a, b = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


@pytest.fixture(scope="module", params=ISSUES, ids=lambda p: p.stem)
def mail_file(request, tmp_path_factory) -> Path:
    rendered = render_issue(load_issue(request.param), RenderOptions.from_settings(load_settings()))
    html, _ = personalise(rendered, unsubscribe_url="https://n.example/u/t",
                          manage_url="https://n.example/m/t")
    path = tmp_path_factory.mktemp("mail") / "mail.html"
    path.write_text(html, encoding="utf-8")
    return path


@pytest.mark.parametrize("width", [320, 375, 414])
def test_no_horizontal_scrolling_on_a_phone(page, mail_file, width):
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(mail_file.as_uri())
    scroll_width, inner_width = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width
    # the long inline code and URLs wrapped instead of running off the screen
    widest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('.main code, .main a')]"
        ".map(e => e.getBoundingClientRect().right))")
    assert widest <= width


def test_desktop_width_keeps_a_readable_column(page, mail_file):
    page.set_viewport_size({"width": 1000, "height": 800})
    page.goto(mail_file.as_uri())
    column = page.evaluate("document.querySelector('.main').getBoundingClientRect().width")
    assert 560 <= column <= 640


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_at_least_4_5_to_1(page, mail_file, scheme):
    page.emulate_media(color_scheme=scheme)
    page.goto(mail_file.as_uri())
    colours = page.evaluate(COLOURS_JS)
    for name, (foreground, background) in colours.items():
        if foreground:
            assert contrast(foreground, background) >= 4.5, (scheme, name, foreground, background)
    expect_dark = scheme == "dark"
    for area in ("page", "header"):
        assert (luminance(colours[area][1]) < 0.05) == expect_dark, (scheme, area, colours[area])


def test_non_ascii_survives_the_7bit_document_in_text_and_in_style_sheets(page):
    from mailer.render.pipeline import finish_document

    html = finish_document('<html><head><style>p::after { content: " · 🦀"; }</style></head>'
                           "<body><p>Crème brûlée</p></body></html>")
    assert html.isascii()
    page.set_content(html)
    assert page.inner_text("p") == "Crème brûlée"
    after = page.evaluate("getComputedStyle(document.querySelector('p'), '::after').content")
    assert after == '" · 🦀"'


PREHEADER_JS = """
() => {
  const el = document.querySelector('.preheader');
  const box = (node) => { const r = node.getBoundingClientRect(); return [r.width, r.height]; };
  const seen = (node) => node.checkVisibility({opacityProperty: true, visibilityProperty: true});
  const hidden = box(el), visible = seen(el);
  // a client that strips display:none keeps the rest of the style
  el.style.display = 'block';
  const style = getComputedStyle(el);
  return {hidden, visible, stripped: box(el), strippedVisible: seen(el), opacity: style.opacity,
          visibility: style.visibility, text: el.textContent.trim()};
}
"""


def test_preheader_is_invisible_even_where_display_none_is_dropped(page, mail_file):
    page.goto(mail_file.as_uri())
    found = page.evaluate(PREHEADER_JS)
    assert found["text"]  # the preview line is in the mail
    assert found["hidden"] == [0, 0] and not found["visible"]
    assert found["stripped"][1] == 0 and found["opacity"] == "0"
    assert found["visibility"] == "hidden" and not found["strippedVisible"]


HANDLERS_JS = """
() => [...document.querySelectorAll('*')].flatMap(el =>
  [...el.attributes].filter(a => a.name.startsWith('on')).map(a => el.tagName + ' ' + a.name)
  .concat(getComputedStyle(el).position === 'fixed' ? [el.tagName + ' position:fixed'] : []))
"""


def test_quotes_in_titles_and_alt_text_run_nothing_in_a_browser(page, tmp_path):
    """Issue 19.1: the two payloads that gave the mail live handlers and a fixed overlay."""
    from mailer.domain import Issue

    body = ('Hello.\n\n[x](https://ok.example/ "a\\" onmouseover=window.pwned=1// ")\n\n'
            "<img src=\"https://ok.example/i.png\" alt='x\" onerror=window.pwned=2 "
            "style=position:fixed;inset:0'>\n")
    rendered = render_issue(Issue(title="This Week in Rust 901", body=body, number=901),
                            RenderOptions.from_settings(load_settings()))
    path = tmp_path / "mail.html"
    path.write_text(rendered.html, encoding="utf-8")
    # nothing leaves the machine; the failed image load is what would fire onerror
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else route.abort())
    page.goto(path.as_uri())
    page.hover("a[href='https://ok.example/']")
    page.wait_for_load_state("load")
    assert page.evaluate(HANDLERS_JS) == []
    assert page.evaluate("window.pwned") is None
    assert page.get_attribute("a[href='https://ok.example/']", "title") == 'a\\" onmouseover=window.pwned=1//'
