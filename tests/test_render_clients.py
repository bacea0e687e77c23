"""The mail in Chromium as the clients that ignore part of its CSS would show it (issue 24).

caniemail lists which clients drop what: Yahoo web and the iOS and Android apps ignore
``word-break``; Outlook's Word engine, Samsung Mail and the Gmail apps with other accounts
ignore ``white-space``; many webmails drop every ``<style>`` element. Each simulated client
(tests/email_clients.py) removes that from the rendered HTML, and the mail must still fit a phone's width.

The screenshots (light and dark) go to tests/output/render-clients/ (gitignored): look at them
after a template change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.config import load_settings
from mailer.issues import load_issue
from mailer.render import RenderOptions, personalise, render_issue
from tests.email_clients import CLIENTS

pytestmark = [pytest.mark.browser, pytest.mark.peer]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "render"
OUTPUT = ROOT / "tests" / "output" / "render-clients"
# Real issues from three eras of the newsletter, read where ../shared has them (never copied).
SHARED_CONTENT = next((folder / "shared" / "twir" / "content" for folder in ROOT.parents[:2]
                       if (folder / "shared" / "twir" / "content").is_dir()), None)
OLD_ISSUES = ["2013-06-07-this-week-in-rust.markdown", "2015-01-02-this-week-in-rust.md",
              "2018-04-03-this-week-in-rust.md"]
ISSUES = [FIXTURES / "clients-long-lines.md", FIXTURES / "clients-2014-style.md",
          ROOT / "examples" / "2026-03-25-this-week-in-rust.md",
          *(pytest.param(Path(SHARED_CONTENT or ".") / name, marks=pytest.mark.corpus,
                         id=name.removesuffix(".md").removesuffix(".markdown"))
            for name in OLD_ISSUES)]
WIDTHS = [320, 375]
SCREENSHOT_HEIGHT = 3000







def rendered_html(issue_path: Path) -> str:
    rendered = render_issue(load_issue(issue_path), RenderOptions.from_settings(load_settings()))
    html, _ = personalise(rendered, unsubscribe_url="https://n.example/u/t",
                          manage_url="https://n.example/m/t")
    return html


@pytest.fixture(scope="module", params=ISSUES, ids=lambda p: p.stem)
def issue_html(request) -> tuple[str, str]:
    if not request.param.is_file():
        pytest.skip("../shared/twir/content is not beside the project")
    return request.param.stem, rendered_html(request.param)


def test_the_simulated_clients_really_remove_what_they_ignore():
    html = ('<style>p{white-space:pre}</style><p style="word-break:break-word;color:red">x</p>'
            '<pre style="white-space:pre-wrap;word-break:break-word">y</pre>')
    assert "word-break" not in CLIENTS["no-word-break"](html)
    assert "color:red" in CLIENTS["no-word-break"](html)
    assert "white-space" not in CLIENTS["no-white-space"](html)
    assert "<style" not in CLIENTS["no-style-element"](html)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("client", CLIENTS)
def test_the_mail_fits_a_phone_in_each_client(page, issue_html, client, width, tmp_path):
    name, html = issue_html
    path = tmp_path / f"{client}.html"
    path.write_text(CLIENTS[client](html), encoding="utf-8")
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(path.as_uri())
    document_width = page.evaluate("document.documentElement.scrollWidth")
    if width == 375:
        keep_screenshots(page, f"{name}-{client}-{width}")
    assert document_width <= width, f"{name} in {client}: {document_width} px at {width} px"


def keep_screenshots(page, stem: str) -> None:
    """Light and dark screenshots of the mail (its first 3,000 px), to look at after a change."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    size = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    clip = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], SCREENSHOT_HEIGHT)}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(OUTPUT / f"{stem}-{scheme}.png"), full_page=True, clip=clip)
    page.emulate_media(color_scheme="light")
