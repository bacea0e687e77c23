"""Issue → (MJML, HTML, text), once per issue; :func:`personalise` per recipient.

Per-recipient values (the unsubscribe and manage URLs) are placeholders in the rendered parts, so
a send to 20,000 readers renders once and fills each message with two ``str.replace`` calls.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from mailer.config import Settings
from mailer.domain import Issue
from mailer.errors import RenderError
from mailer.render.allowlist import enforce_allow_list
from mailer.render.body import Body, build_body
from mailer.render.links import IssueLink, count_links
from mailer.render.mjml import mjml_to_lean_email_html
from mailer.figures import GMAIL_CLIP_BYTES, NEAR_CLIP_BYTES, near_gmail_clip
from mailer.render.palette import DARK, LIGHT
from mailer.render.templates import template_environment
from mailer.render.text import WIDTH, body_to_text, wrap

# Tokens that survive Jinja, MJML, premailer and lxml untouched (lxml keeps % and letters in
# href attributes) and that no issue will ever contain.
UNSUBSCRIBE_PLACEHOLDER = "%%MAILER_UNSUBSCRIBE_URL%%"
MANAGE_PLACEHOLDER = "%%MAILER_MANAGE_URL%%"

SIZE_WARNING_BYTES = NEAR_CLIP_BYTES  # `mailer check`'s default budget too (mailer.figures)
# The real unsubscribe and manage URLs replace the placeholders: leave room for them.
PERSONALISATION_ALLOWANCE = 600
TEMPLATE_NAME = "issue.mjml.j2"
PREHEADER_MAX = 110  # what phones show of it; the rest of the line is padding
SENTENCE_END = re.compile(r"^(.+?[.!?])(?=\s|$)")
# After the preview line: zero-width joiners and no-break spaces, so the client shows them
# rather than running on into the mail's first words ("View this issue on the web ...").
# In lines of 30 (540 bytes as character references): mail lines stay under 998 octets, and a
# line break is one more space, which the preview shows as the blank it is.
PREHEADER_PADDING = Markup("\n".join(["&#847;&zwnj;&nbsp;" * 30] * 3))
HEADLINES_IN_PREVIEW = 2
CRATE_OF_THE_WEEK = re.compile(r"crate of the week", re.IGNORECASE)
# A list item's markers before its headline: "[video]", "🎈🎉", a date "2031-02-06 |".
ITEM_MARKERS = re.compile(r"^(?:\[[a-z]+\]\s*|[^\w\s`\[(\'\"“‘]+\s*)+", re.IGNORECASE)


@dataclass(frozen=True)
class RenderOptions:
    site_url: str
    base_url: str
    newsletter_name: str
    sender_line: str
    templates_dir: Path
    click_counts: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "RenderOptions":
        return cls(
            site_url=settings.site_url,
            base_url=settings.base_url,
            newsletter_name=settings.newsletter_name,
            sender_line=settings.sender_line,
            templates_dir=Path(settings.templates_dir),
            click_counts=settings.click_counts,
        )


@dataclass(frozen=True)
class RenderedIssue:
    issue: Issue
    subject: str
    preheader: str
    mjml: str
    html: str
    text: str
    warnings: tuple[str, ...]
    # What each BASE_URL/l/<issue>/<n> in the HTML part stands for; empty with counts off.
    links: tuple[IssueLink, ...] = ()

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


def render_issue(issue: Issue, options: RenderOptions) -> RenderedIssue:
    """Render one issue into its MJML source, inlined HTML and plaintext. Pure: no I/O but the
    templates."""
    body = build_body(issue.body, issue.body_format, options.site_url)
    warnings = list(body.warnings)
    web_url = issue_web_url(issue, options, warnings)
    context = template_context(issue, options, body, web_url)
    mjml_source = render_template(options.templates_dir, context)
    # Last, over the mail as it goes out: no stage after the sanitizer can add what it removed.
    html, removed = enforce_allow_list(finish_document(mjml_to_lean_email_html(mjml_source)))
    warnings.extend(removed)
    links: tuple[IssueLink, ...] = ()
    if options.click_counts and issue.number is not None:
        # After the sanitizer, which would keep these same-host links anyway; before the size
        # check, so the budget is measured on the mail as it goes out.
        html, links = count_links(html, base_url=options.base_url, issue_number=issue.number)
    elif options.click_counts:
        warnings.append("link counts are on but the issue has no number: its links are left as written")
    text = render_text(issue, options, body, web_url, context["issue_line"])
    warnings.extend(size_warnings(len(html.encode("utf-8"))))
    return RenderedIssue(
        issue=issue, subject=context["subject"], preheader=context["preheader"],
        mjml=mjml_source, html=html, text=text, warnings=tuple(warnings), links=links,
    )


def personalise(rendered: RenderedIssue, *, unsubscribe_url: str, manage_url: str) -> tuple[str, str]:
    """Fill one recipient's links into the rendered parts: ``(html, text)``."""
    html = rendered.html.replace(
        UNSUBSCRIBE_PLACEHOLDER, html_lib.escape(unsubscribe_url, quote=True)
    ).replace(MANAGE_PLACEHOLDER, html_lib.escape(manage_url, quote=True))
    text = rendered.text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url).replace(
        MANAGE_PLACEHOLDER, manage_url
    )
    return html, text


# -- pieces -----------------------------------------------------------------------------------


def issue_web_url(issue: Issue, options: RenderOptions, warnings: list[str]) -> str | None:
    url = issue.web_url or (options.site_url if issue.links_stripped else None)
    if url and urlsplit(url).scheme not in ("http", "https"):
        warnings.append(f"web address of the issue ignored, not http(s): {url[:60]!r}")
        return None
    return url


def issue_line(issue: Issue) -> str:
    parts = []
    if issue.number is not None:
        parts.append(f"Issue {issue.number}")
    if issue.date is not None:
        parts.append(long_date(issue.date))
    return " · ".join(parts)


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def preheader_of(issue: Issue, body: Body) -> str:
    """The line inboxes show after the subject: the editor's ``Preheader:``, else what is new
    this week (the crate of the week and the first headlines), else the intro's first sentence.
    Every TWiR intro starts with the same sentence, so that is only the last resort."""
    if issue.preview:
        return shortened(issue.preview)
    news = [f"Crate of the week: {crate}" for crate in [crate_of_the_week(body)] if crate]
    news.extend(first_headlines(body, HEADLINES_IN_PREVIEW))
    if news:
        return shortened(" · ".join(news))
    return shortened(first_sentence(body))


def words_of(tag) -> str:
    text = " ".join(tag.get_text(" ").split())
    return text.replace(" !", "!").replace(" .", ".").replace(" ,", ",").replace(" :", ":")


def crate_of_the_week(body: Body) -> str | None:
    """The first link's words in the paragraph under the "Crate of the Week" heading."""
    heading = next((h for h in body.soup.find_all(["h1", "h2", "h3"])
                    if CRATE_OF_THE_WEEK.search(h.get_text())), None)
    paragraph = heading.find_next("p") if heading else None
    link = paragraph.find(["a", "code"]) if paragraph else None
    return words_of(link) or None if link else None


def first_headlines(body: Body, count: int) -> list[str]:
    """The words of the first list items after the intro: the link an item starts with (a
    headline, "* [Title](…)"), else the item's first words (early issues: "- Ben added …")."""
    headlines = []
    for item in body.soup.find_all("li"):
        text = ITEM_MARKERS.sub("", words_of(item))
        link = item.find("a")
        if link is not None and words_of(link) and text.startswith(words_of(link)):
            text = words_of(link)
        if text:
            headlines.append(shortened(text, 60))
        if len(headlines) == count:
            break
    return headlines


def first_sentence(body: Body) -> str:
    first = body.soup.find("p")
    text = words_of(first) if first else ""
    match = SENTENCE_END.match(text)
    return match.group(1) if match else text


def shortened(text: str, limit: int = PREHEADER_MAX) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ·,;:") + "…"


def template_context(issue: Issue, options: RenderOptions, body: Body, web_url: str | None) -> dict:
    return {
        "subject": issue.title,
        "preheader": preheader_of(issue, body),
        "preheader_padding": PREHEADER_PADDING,
        "contents": body.contents,
        "newsletter_name": options.newsletter_name,
        "issue_line": issue_line(issue),
        "web_url": web_url,
        "links_stripped": issue.links_stripped,
        "sender_line": options.sender_line,
        "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
        "manage_url": MANAGE_PLACEHOLDER,
        "body_html": Markup(body.html()),
        "colors": LIGHT,
        "dark": DARK,
    }


def render_template(templates_dir: Path, context: dict) -> str:
    try:
        template = template_environment(templates_dir).get_template(TEMPLATE_NAME)
        return template.render(context)
    except jinja2.TemplateNotFound as error:
        raise RenderError(f"template {error.name} not found in {templates_dir}") from None
    except jinja2.TemplateError as error:
        raise RenderError(f"template {TEMPLATE_NAME} failed: {error}") from None


STYLE_BLOCK = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.DOTALL)
CSS_SPACE_AROUND = re.compile(r"\s*([{};,>])\s*")
CSS_WHITESPACE = re.compile(r"\s+")


def minify_css(css: str) -> str:
    css = CSS_WHITESPACE.sub(" ", css)
    css = CSS_SPACE_AROUND.sub(r"\1", css)
    return ascii_css(css.replace(";}", "}").strip())


def ascii_css(css: str) -> str:
    """Non-ASCII as CSS escapes: a style sheet is raw text in HTML, where the character
    references seven_bit_safe uses elsewhere would be read literally. Each escape ends with a
    space, which CSS consumes as its terminator, so a space after the character survives."""
    if css.isascii():
        return css
    return "".join(ch if ch.isascii() else f"\\{ord(ch):X} " for ch in css)


SEVEN_BIT_LINE = 900  # under RFC 5322's 998 octets, leaving room for a reader's links
TAG_OPENING = re.compile(r"(<[a-zA-Z][a-zA-Z0-9]*) ")


def finish_document(html: str) -> str:
    """Squeeze the whitespace premailer and cssutils pretty-print into the style sheets, and make
    the document 7bit-safe."""
    html = STYLE_BLOCK.sub(lambda m: m.group(1) + minify_css(m.group(2)) + m.group(3), html)
    return seven_bit_safe(html)


def seven_bit_safe(html: str) -> str:
    """ASCII only (other characters as numeric references) with short lines.

    Such a body goes out with ``Content-Transfer-Encoding: 7bit``: every reader's copy is the
    template with two links replaced, so no message of a 20,000-reader send pays for a base64
    pass over ~60 KB. Long lines are broken inside tags (between the name and its first
    attribute), where a line break is only whitespace and changes nothing a reader sees.
    """
    html = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
    return "\n".join(
        TAG_OPENING.sub("\\1\n", line) if len(line) > SEVEN_BIT_LINE else line
        for line in html.split("\n")
    )


def size_warnings(html_bytes: int) -> list[str]:
    expected = html_bytes + PERSONALISATION_ALLOWANCE
    if expected > GMAIL_CLIP_BYTES:
        return [
            f"error: HTML is {html_bytes:,} bytes; with the reader's links it passes Gmail's "
            f"{GMAIL_CLIP_BYTES:,}-byte clip, which hides the rest of the mail and the "
            "unsubscribe link"
        ]
    if near_gmail_clip(html_bytes, SIZE_WARNING_BYTES):
        return [
            f"HTML is {html_bytes:,} bytes, close to Gmail's {GMAIL_CLIP_BYTES:,}-byte clip"
        ]
    return []


# -- plaintext --------------------------------------------------------------------------------


def render_text(issue: Issue, options: RenderOptions, body: Body, web_url: str | None,
                line: str) -> str:
    header = [issue.title, "=" * min(len(issue.title), WIDTH)]
    if line:
        header.append(line)
    if web_url:
        header.append(f"Read it on the web: <{web_url}>")
    blocks = ["\n".join(header)]
    if issue.links_stripped and web_url:
        blocks.append(wrap(
            f"This copy of the issue has no links. Read this issue on the web to follow them: "
            f"<{web_url}>", WIDTH))
    blocks.append(body_to_text(body.soup))
    blocks.append("\n".join([
        "-- ",
        wrap(options.sender_line, WIDTH),
        "",
        f"Unsubscribe: <{UNSUBSCRIBE_PLACEHOLDER}>",
        f"Manage your subscription: <{MANAGE_PLACEHOLDER}>",
        # as in the HTML footer: both parts link the web issue as often (rspamd's URI_COUNT_ODD)
        *([f"View on the web: <{web_url}>"] if web_url else []),
    ]))
    return "\n\n".join(blocks) + "\n"
