"""The last pass over the finished mail: only the tags and attributes the template and the
sanitizer allow reach a reader.

:mod:`mailer.sanitize` cleans an issue's body before it meets MJML, premailer and lxml. Those
stages re-parse and re-write the markup, and one of them turning text into markup undoes the
sanitizer: mjml-python once wrote a ``"`` in a link title as ``\\"`` and the rest of the title
became real attributes (issue 19). This pass reads the HTML exactly as it goes out and keeps it
byte for byte when everything in it is allowed; otherwise it rewrites only the tags at fault:

* an attribute not in the allow-list, any ``on…`` handler, a link or image URL with a scheme
  the sanitizer refuses, and duplicate attributes (a browser takes the first) are dropped;
* in-message links are the contents line's: an ``id`` and a ``href="#…"`` are kept only when
  the name is a short run of letters, digits and hyphens (what the renderer writes on section
  headings), never one a client's own page could mean (``#`` alone, a ``:``, quotes or spaces);
* in a ``style`` attribute, declarations that load, run or place something (``url(``,
  ``expression(``, ``position``, CSS escapes and comments that could hide either) are dropped:
  neither the shipped template nor the sanitizer writes one;
* an element that could run, load or submit something (``<script>``, ``<iframe>``, ``<form>``,
  a ``<style>`` or ``<meta>`` outside the head, …) stops the render with a :class:`RenderError`;
  another unknown element loses its tags and keeps its words.

Comments are left alone: body comments never get this far (the sanitizer drops them) and the
template's MSO conditional comments are what Outlook lays the mail out with.

Pure: no database, no network.
"""

from __future__ import annotations

import html as html_lib
import re
from collections import Counter
from html.parser import HTMLParser

from mailer.errors import RenderError
from mailer.sanitize import ATTRIBUTES, REMOVED_WITH_CONTENT, TAGS, is_loadable_url, is_safe_url

# What MJML and the shipped templates write around the body, on top of what a body may hold.
TEMPLATE_TAGS = frozenset({
    "html", "head", "body", "title", "meta", "style", "center", "font", "span", "table", "tbody",
    "thead", "tfoot", "tr", "td", "th", "div", "p", "a", "img", "br", "hr",
})
HEAD_ONLY_TAGS = frozenset({"title", "meta", "style"})
ALLOWED_TAGS = TAGS | TEMPLATE_TAGS
# Presentational attributes MJML puts on its layout tables, allowed on any tag.
LAYOUT_ATTRIBUTES = frozenset({
    "align", "valign", "bgcolor", "border", "cellpadding", "cellspacing", "width", "height",
    "class", "role",
})
TEMPLATE_ATTRIBUTES = {
    "html": frozenset({"xmlns", "xmlns:v", "xmlns:o"}),
    "meta": frozenset({"name", "content", "http-equiv", "charset"}),
    "style": frozenset({"type", "media"}),
    "a": frozenset({"target", "rel", "name"}),
    "img": frozenset({"border"}),
}
ARIA_ATTRIBUTE = re.compile(r"aria-[a-z]+\Z")
URL_ATTRIBUTES = {"href": is_safe_url, "src": is_loadable_url}
# The ids the renderer puts on section headings, and the in-message links to them.
SECTION_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")


def is_allowed_value(name: str, value: str) -> bool:
    """Is this value of an allowed attribute one that may go out?"""
    if name in URL_ATTRIBUTES and not URL_ATTRIBUTES[name](value):
        return False
    if name == "id" or (name == "href" and value.startswith("#")):
        return bool(SECTION_NAME.match(value.removeprefix("#") if name == "href" else value))
    return True

# A declaration that loads (url, image-set, @import), runs (expression, behavior, -moz-binding,
# javascript:) or places something over the mail (position); escapes and comments could hide one.
HOSTILE_DECLARATION = re.compile(
    r"url\s*\(|image-set|@import|expression|behavior|binding|script\s*:|\\|/\*|^\s*position\s*:",
    re.IGNORECASE,
)


def allowed_attributes(tag: str) -> frozenset[str]:
    return frozenset(ATTRIBUTES["*"] | ATTRIBUTES.get(tag, set()) | LAYOUT_ATTRIBUTES
                     | TEMPLATE_ATTRIBUTES.get(tag, frozenset()))


def is_allowed_attribute(tag: str, name: str) -> bool:
    if name.startswith("on"):
        return False
    return name in allowed_attributes(tag) or bool(ARIA_ATTRIBUTE.match(name))


def safe_style(value: str) -> str:
    """``value`` without the declarations a mail's own styles never hold (unchanged otherwise)."""
    return ";".join(part for part in value.split(";") if not HOSTILE_DECLARATION.search(part))


class _Scanner(HTMLParser):
    """Finds the tags of ``html`` that break the allow-list, with where they stand in it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        self.html = html
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", html)]
        self.edits: list[tuple[int, int, str]] = []  # (start, end, replacement)
        self.removed: Counter[str] = Counter()
        self.in_head = False

    def here(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        start = self.here()
        if self.html[start:start + len(raw)] != raw:  # never seen: stop rather than guess
            raise RenderError(f"the rendered HTML could not be checked near <{tag}>")
        self.in_head = self.in_head or tag == "head"
        if tag == "body":
            self.in_head = False
        if not self.allowed_here(tag):
            self.edits.append((start, start + len(raw), ""))
            self.removed[f"<{tag}>"] += 1
            return
        kept = self.kept_attributes(tag, attrs)
        if kept != attrs:
            self.edits.append((start, start + len(raw), rebuilt_tag(tag, kept, raw)))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False
        if tag not in ALLOWED_TAGS:
            start = self.here()
            end = self.html.find(">", start) + 1
            self.edits.append((start, end, ""))

    def allowed_here(self, tag: str) -> bool:
        if tag in HEAD_ONLY_TAGS and self.in_head:
            return True
        if tag in REMOVED_WITH_CONTENT or tag in HEAD_ONLY_TAGS:
            raise RenderError(f"the rendered HTML holds a <{tag}> element, which no mail may carry "
                              f"(the sanitizer removes it; is it in MAILER_TEMPLATES_DIR's templates?)")
        return tag in ALLOWED_TAGS

    def kept_attributes(self, tag: str, attrs: list[tuple[str, str | None]]):
        kept: list[tuple[str, str | None]] = []
        seen: set[str] = set()
        for name, value in attrs:
            if name in seen or not is_allowed_attribute(tag, name):
                self.removed[f"{name} on <{tag}>"] += 1
            elif value is not None and not is_allowed_value(name, value):
                self.removed[f"{name} on <{tag}>"] += 1
            elif value is not None and name == "style" and safe_style(value) != value:
                self.removed[f"part of a style on <{tag}>"] += 1
                if safe_style(value).strip(" ;"):
                    kept.append((name, safe_style(value)))
            else:
                kept.append((name, value))
            seen.add(name)
        return kept


def rebuilt_tag(tag: str, attrs: list[tuple[str, str | None]], raw: str) -> str:
    """The start tag with only ``attrs``, written as HTML that needs no further escaping."""
    parts = [name if value is None else f'{name}="{html_lib.escape(value, quote=True)}"'
             for name, value in attrs]
    separator = "\n" if "\n" in raw else " "  # keep the line breaks the 7bit encoding put in
    closing = "/>" if raw.endswith("/>") else ">"
    text = f"<{tag}" + "".join(separator + part for part in parts) + closing
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def enforce_allow_list(html: str) -> tuple[str, list[str]]:
    """``html`` with everything outside the allow-list removed, and a warning naming what was."""
    scanner = _Scanner(html)
    scanner.feed(html)
    scanner.close()
    if not scanner.edits:
        return html, []
    for start, end, replacement in sorted(scanner.edits, reverse=True):
        html = html[:start] + replacement + html[end:]
    removed = ", ".join(f"{what} ×{count}" if count > 1 else what
                        for what, count in scanner.removed.items())
    return html, [f"removed from the finished HTML, which the sanitizer would not let through: {removed}"]
