"""An issue's body → one clean, email-ready HTML fragment (a BeautifulSoup tree).

The same tree feeds both parts of the mail: the HTML part serialises it into the MJML template,
the plaintext part walks it (see :mod:`mailer.render.text`), so both say the same thing.

What "clean" means here:

* editor HTML comments are gone (they hold notes for contributors, never for readers);
* every link and image is absolute (relative ones resolved against the site), links that only
  jump inside the web page (heading anchors, ``#fragment``) are unwrapped, and links with a
  scheme a mail client should not follow (``javascript:``, ``data:``) lose their target;
* raw HTML that has no place in a mail (scripts, forms, frames, event handlers) is removed by
  the one allow-list sanitizer, :mod:`mailer.sanitize`: issue files are written by many
  contributors and an HTML page may come from the web;
* ``<code>``, tables and images get the inline styles they need when a client drops ``<style>``.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

import markdown
from bs4 import BeautifulSoup, Comment, NavigableString, Tag
from bs4.dammit import EntitySubstitution
from bs4.formatter import HTMLFormatter

from mailer.render.palette import LIGHT
from mailer.sanitize import attribute_text, clean_html, is_safe_url

# Python-Markdown with "extra" is what TWiR's site (Pelican) renders issues with.
MARKDOWN_EXTENSIONS = ("extra",)

# Heading anchors and permalinks on web pages: a glyph that means nothing in a mail.
ANCHOR_GLYPHS = frozenset({"", "#", "¶", "§", "🔗", "link", "permalink"})
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
UNRESOLVED_REFERENCE = re.compile(r"\[([^\[\]\n]+)\]\[([^\[\]\n]*)\]")
# A link in the source, read only to word a warning: the sanitizer drops an unsafe target silently.
# The words stop at the next <a or </a, so unclosed links cannot make the search quadratic.
SOURCE_LINK = re.compile(r"""<a\s[^>]*?\bhref\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)[^>]*>"""
                         r"""([^<]*(?:<(?!/?a[\s>])[^<]*)*)</a\s*>""", re.IGNORECASE)
SOURCE_TAG = re.compile(r"<[^>]*>")

# Inline styles that must survive clients that drop <style> (the Gmail apps for non-Google
# accounts, many webmails): code must still look like code.
# Kept short: TWiR issues hold ~100 inline code spans and this is repeated on each.
# Consolas first: Outlook's Word engine takes only the first name of a stack.
CODE_STYLE = f"font-family:Consolas,Menlo,monospace;background:{LIGHT['code']};padding:0 3px"
PRE_STYLE = (
    "font-family:Consolas,ui-monospace,Menlo,monospace;font-size:14px;line-height:1.45;"
    "margin:0;word-break:break-word;overflow-wrap:break-word"
)
# A code block's box is a table cell: Word drops padding anywhere else.
CODE_BLOCK_TABLE = ('<table class="cb" role="presentation" width="100%" cellpadding="0" '
                    'cellspacing="0" style="margin:12px 0;table-layout:fixed"><tr><td style="'
                    f'background-color:{LIGHT["code"]};padding:12px;border-radius:6px">')
CODE_BLOCK_END = "</td></tr></table>"
IMAGE_STYLE = "max-width:100%;height:auto"
# A wide table scrolls inside itself rather than widening the whole mail on a phone.
TABLE_WRAPPER_STYLE = "overflow-x:auto;max-width:100%"


@dataclass
class Body:
    """The cleaned fragment and what the clean-up noticed on the way."""

    soup: BeautifulSoup
    warnings: list[str] = field(default_factory=list)
    # (id, words) of the top-level sections, for the contents line; ids are on the headings
    contents: list[tuple[str, str]] = field(default_factory=list)

    def html(self) -> str:
        return minify_fragment(self.soup.decode(formatter=MJML_SAFE))


# mjml-python (mrml) writes attribute values back with Rust's string escapes, not HTML's: a `"`
# becomes `\"` (which ends the value in HTML, so the rest of it became attributes), a backslash
# `\\`, a newline `\n`, a no-break space `\u{a0}`. Only printable ASCII without quotes,
# backslash, `<`, `>` and `&` passes it unchanged, so everything else goes in as a character
# reference, which it copies as it is and every HTML parser reads back as the character.
MJML_UNSAFE_IN_ATTRIBUTE = re.compile(r"[^A-Za-z0-9 !#$%()*+,\-./:;=?@\[\]^_`{|}~]")


def mjml_safe_attribute(value: str) -> str:
    """An attribute value MJML round-trips: ``&`` as ``&amp;``, the rest as ``&#N;``."""
    return MJML_UNSAFE_IN_ATTRIBUTE.sub(
        lambda m: "&amp;" if m.group() == "&" else f"&#{ord(m.group())};", value)


# C0 controls other than tab and line breaks: no HTML may hold them, and mrml refuses the whole
# document over one (an ESC pasted with a terminal's output).
C0_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class MjmlSafeFormatter(HTMLFormatter):
    """bs4's "minimal" formatter, with attribute values made safe for mjml-python and text
    without the controls it refuses."""

    def attribute_value(self, value: str) -> str:
        return mjml_safe_attribute(value)

    def substitute(self, ns: str) -> str:
        return C0_CONTROLS.sub("", super().substitute(ns))


MJML_SAFE = MjmlSafeFormatter(entity_substitution=EntitySubstitution.substitute_xml)


def markdown_to_html(source: str) -> str:
    """TWiR Markdown → HTML, editor comments removed first so Markdown never renders them."""
    without_comments = HTML_COMMENT.sub("", source)
    return markdown.markdown(without_comments, extensions=list(MARKDOWN_EXTENSIONS))


def build_body(body: str, body_format: str, site_url: str) -> Body:
    """Parse an issue body (Markdown or an HTML fragment) and clean it for mail."""
    html = markdown_to_html(body) if body_format == "markdown" else body
    soup = BeautifulSoup(clean_html(html), "html.parser")
    result = Body(soup)
    fix_links(soup, site_url, result.warnings, source_html=html)
    fix_images(soup, site_url, result.warnings)
    style_code(soup)
    wrap_tables(soup)
    scope_header_cells(soup)
    unwrap_dangling_references(soup, result.warnings)
    result.contents = mark_sections(soup, source_has_ids=" id=" in html)
    return result


def absolute_url(url: str, site_url: str) -> str:
    return urljoin(site_url.rstrip("/") + "/", url.strip())


def fix_links(soup: BeautifulSoup, site_url: str, warnings: list[str], source_html: str = "") -> None:
    """Absolute targets; a link that has none (or lost an unsafe one) keeps its words only."""
    unsafe_targets: dict[str, str] | None = None
    for link in soup.find_all("a"):
        href = attribute_text(link, "href").strip()
        text = link.get_text(" ", strip=True)
        if href.startswith("#"):
            drop_anchor_link(link, text)
            continue
        if not href:
            if unsafe_targets is None:  # rare: only then is the source read again
                unsafe_targets = unsafe_link_targets(source_html)
            warnings.append(missing_target_warning(text, unsafe_targets.get(" ".join(text.split()))))
            link.unwrap()
            continue
        url = absolute_url(href, site_url)
        # Only the target and a title are kept: ids, classes and rels from a page mean nothing.
        title = link.get("title")
        link.attrs = {"href": url, "title": title} if title else {"href": url}


def unsafe_link_targets(source_html: str) -> dict[str, str]:
    """The words and target of each link in the source whose target the sanitizer drops."""
    found = {}
    for match in SOURCE_LINK.finditer(source_html):
        target = html_lib.unescape(match.group(1).strip("'\"")).strip()
        if not is_safe_url(target):
            words = html_lib.unescape(SOURCE_TAG.sub(" ", match.group(2)))
            found[" ".join(words.split())] = target
    return found


def missing_target_warning(text: str, unsafe_target: str | None) -> str:
    if unsafe_target is not None:
        return f"link with an unsafe target removed: {text!r} ({unsafe_target[:40]})"
    return f"link without a target: {text!r}"


def drop_anchor_link(link: Tag, text: str) -> None:
    """A link into the web page itself: keep its words, lose the jump (or the ¶ glyph)."""
    if text.lower() in ANCHOR_GLYPHS:
        link.decompose()
    else:
        link.unwrap()


def fix_images(soup: BeautifulSoup, site_url: str, warnings: list[str]) -> None:
    for image in soup.find_all("img"):
        src = attribute_text(image, "src").strip()
        url = absolute_url(src, site_url) if src else ""
        if not url:  # none, or the sanitizer removed one a mail client must not load
            warnings.append(f"image without a usable source removed: {src[:60]!r}")
            image.decompose()
            continue
        alt = attribute_text(image, "alt").strip()
        if not alt:
            warnings.append(f"image without alt text: {url}")
        attrs = {"src": url, "alt": alt, "style": IMAGE_STYLE}
        for size in ("width", "height"):
            if attribute_text(image, size).isdigit():
                attrs[size] = attribute_text(image, size)
        image.attrs = dict(attrs)


def style_code(soup: BeautifulSoup) -> None:
    for pre in soup.find_all("pre"):
        pre["style"] = PRE_STYLE
        for code in pre.find_all("code"):
            code.attrs = {}
    for code in soup.find_all("code"):
        if code.find_parent("pre") is None:
            code.attrs = {"style": CODE_STYLE}


def wrap_tables(soup: BeautifulSoup) -> None:
    for table in soup.find_all("table"):
        table["class"] = "data"
        wrapper = soup.new_tag("div", style=TABLE_WRAPPER_STYLE)
        table.wrap(wrapper)


def scope_header_cells(soup: BeautifulSoup) -> None:
    """``scope`` on every ``<th>``, so screen readers tie each cell to its header: a row's
    first cell heads the row, any other header cell its column."""
    for cell in soup.find_all("th"):
        if cell.get("scope") in ("row", "col", "rowgroup", "colgroup"):
            continue
        in_head = cell.find_parent("thead") is not None
        first = cell.find_previous_sibling(["td", "th"]) is None
        has_data = cell.find_next_sibling("td") is not None
        cell["scope"] = "row" if not in_head and first and has_data else "col"


SECTION_HEADINGS = ("h1", "h2", "h3")
NOT_IN_ID = re.compile(r"[^a-z0-9]+")
MIN_SECTIONS = 2  # one section needs no contents line


def mark_sections(soup: BeautifulSoup, source_has_ids: bool = True) -> list[tuple[str, str]]:
    """Give the top-level headings of the body (``#`` in early issues, ``##`` now: the first
    heading's level) ids for the contents line to link to, and return (id, words) for each.

    Every other id is dropped: links into the web page were unwrapped already, and ids from a
    page or from footnotes (``fn:1``) would only collide with these.
    """
    if source_has_ids:  # rare (pages, footnotes): a walk over the whole tree costs
        for tag in soup.find_all(id=True):
            del tag["id"]
    found = soup.find_all(SECTION_HEADINGS)
    if not found:
        return []
    # the first heading's level, and any heading above it (644 has a lone "# Quote of the Week")
    top = SECTION_HEADINGS[:SECTION_HEADINGS.index(found[0].name) + 1]
    headings = [heading for heading in found if heading.name in top]
    if len(headings) < MIN_SECTIONS:
        return []
    contents: list[tuple[str, str]] = []
    taken: set[str] = set()
    for heading in headings:
        words = " ".join(heading.get_text(" ").split())
        if not words:
            continue
        anchor = section_id(words, taken)
        heading["id"] = anchor
        contents.append((anchor, words))
    return contents


def section_id(words: str, taken: set[str]) -> str:
    """A short id of letters, digits and hyphens (what the allow-list lets through), unique."""
    base = NOT_IN_ID.sub("-", words.lower()).strip("-")[:40].rstrip("-") or "section"
    anchor, number = base, 2
    while anchor in taken:
        anchor, number = f"{base}-{number}", number + 1
    taken.add(anchor)
    return anchor


def unwrap_dangling_references(soup: BeautifulSoup, warnings: list[str]) -> None:
    """``[text][ref]`` with no ``[ref]: url`` line: Markdown leaves literal brackets, which
    readers should not see. Keep the words, warn the editor."""
    for node in list(soup.find_all(string=True)):
        if not isinstance(node, NavigableString) or isinstance(node, Comment):
            continue
        text = str(node)
        # the cheap test first: looking up the parents of every string is what costs here
        if not UNRESOLVED_REFERENCE.search(text) or node.find_parent(["code", "pre"]) is not None:
            continue
        for match in UNRESOLVED_REFERENCE.finditer(text):
            label = match.group(2) or match.group(1)
            warnings.append(f"link without a target: {match.group(0)!r} (no [{label}]: line)")
        node.replace_with(NavigableString(UNRESOLVED_REFERENCE.sub(r"\1", text)))


BLOCK_TAGS = (
    "p|div|ul|ol|li|h[1-6]|table|thead|tbody|tfoot|tr|td|th|blockquote|hr|dl|dt|dd|br"
)
BETWEEN_BLOCKS = re.compile(rf"(</?(?:{BLOCK_TAGS})\b[^>]*>)\s+(?=</?(?:{BLOCK_TAGS})\b)")
PRE_BLOCK = re.compile(r"(<pre\b.*?</pre>)", re.DOTALL)
WHITESPACE_RUN = re.compile(r"\s*\n\s*")


def minify_fragment(html: str) -> str:
    """Drop whitespace between block tags and fold line breaks in prose; ``<pre>`` kept as
    code blocks for every client (:func:`mail_code_block`)."""
    parts = PRE_BLOCK.split(html)
    for index in range(0, len(parts), 2):  # even indexes are outside <pre>
        folded = WHITESPACE_RUN.sub("\n", parts[index])
        parts[index] = BETWEEN_BLOCKS.sub(r"\1", folded)
    for index in range(1, len(parts), 2):
        parts[index] = mail_code_block(parts[index])
    return "".join(parts)


LEADING_SPACES = re.compile(r"(?:(?<=\n)|(?<=<code>)) +")
SPACE_RUN = re.compile(r"(?<= ) +")
NBSP_REFERENCE = "&#160;"


def mail_code_block(pre: str) -> str:
    """A ``<pre>`` as a code block that keeps its lines where ``white-space`` is ignored
    (Outlook's Word engine, Samsung Mail, the Gmail apps with other accounts): line ends as
    ``<br>``, indentation and runs of spaces as no-break spaces, in a ``<div>`` rather than a
    ``<pre>``, whose own ``white-space:pre`` those clients keep and which would not wrap, so the
    lines still wrap at single spaces on a phone. The box around it is a table cell. The text
    part reads the tree, not this."""
    pre = pre.expandtabs(4)
    pre = LEADING_SPACES.sub(lambda m: NBSP_REFERENCE * len(m.group()), pre)
    pre = SPACE_RUN.sub(lambda m: NBSP_REFERENCE * len(m.group()), pre)
    body = pre.rstrip("\n").replace("\n", "<br>")
    # the newline closing the last line sits before </code></pre>
    body = re.sub(r"(?:<br>)+(?=(?:</code>)?</pre>$)", "", body)
    body = "<div" + body.removeprefix("<pre").removesuffix("</pre>") + "</div>"
    return CODE_BLOCK_TABLE + body + CODE_BLOCK_END
