"""Every real TWiR issue in ../shared/twir/content (2013–2026 format drift) renders cleanly."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from bs4 import BeautifulSoup

from mailer.config import load_settings
from mailer.issues import load_issue
from mailer.render import GMAIL_CLIP_BYTES, RenderOptions, render_issue
from mailer.render.body import markdown_to_html

pytestmark = pytest.mark.corpus

CONTENT = Path(__file__).resolve().parent.parent.parent / "shared" / "twir" / "content"
ISSUE_FILES = sorted(p.name for p in CONTENT.glob("*.m*")) if CONTENT.is_dir() else []
MARKDOWN_LEFTOVERS = re.compile(r"\]\(|\*\*|\[[^\[\]\n]+\]\[[^\[\]\n]*\]")


def source_links(body: str) -> set[str]:
    """The link targets Python-Markdown itself finds in the source, editor comments aside."""
    soup = BeautifulSoup(markdown_to_html(body), "html.parser")
    return {a["href"] for a in soup.find_all("a", href=True) if not a["href"].startswith("#")}


def normalised(url: str) -> str:
    return unquote(url)  # lxml percent-encodes non-ASCII in href attributes


def visible_prose(soup: BeautifulSoup) -> str:
    for code in soup.find_all(["code", "pre", "style", "title"]):
        code.decompose()
    return soup.get_text(" ")


def text_without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("name", ISSUE_FILES or ["(no corpus)"])
def test_issue_renders_under_the_clip_with_every_link(name, shared_dir):
    path = shared_dir / "twir" / "content" / name
    issue = load_issue(path)
    rendered = render_issue(issue, RenderOptions.from_settings(load_settings()))

    assert rendered.html_bytes < GMAIL_CLIP_BYTES, f"{name}: {rendered.html_bytes} bytes"
    assert not any(w.startswith("error:") for w in rendered.warnings)

    soup = BeautifulSoup(rendered.html, "html.parser")
    html_links = {normalised(a["href"]) for a in soup.find_all("a", href=True)}
    site = load_settings().site_url.rstrip("/") + "/"
    for link in source_links(issue.body):
        absolute = link if re.match(r"^[a-z][a-z0-9+.-]*:", link) else site + link.lstrip("/")
        assert normalised(absolute) in html_links, f"{name}: lost {link}"
        assert absolute in rendered.text, f"{name}: text lost {link}"

    assert not MARKDOWN_LEFTOVERS.search(visible_prose(soup)), name
    assert not MARKDOWN_LEFTOVERS.search(text_without_code(rendered.text)), name
    for comment in re.findall(r"<!--(.*?)-->", issue.body, re.DOTALL):
        words = comment.strip()[:40]
        if len(words) > 12:  # long enough to be unmistakably the editor's note
            assert words not in rendered.html and words not in rendered.text, name
