"""The plaintext part, written from the issue's structure (the cleaned body tree), not from the
MJML output: headings stay headings, lists stay nested lists, links read ``text <url>``.

Lines wrap near 76 columns; a URL is never broken (it holds no spaces, and long words are never
split), so it stays clickable in every client.
"""

from __future__ import annotations

import re
import textwrap

from bs4 import BeautifulSoup, NavigableString, Tag

from mailer.sanitize import attribute_text

WIDTH = 76
HEADING_UNDERLINES = {"h1": "=", "h2": "-"}
BLOCK_TAGS = frozenset({
    "p", "div", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    "table", "hr", "dl", "dt", "dd", "section", "article", "header", "footer", "figure",
})
SPACES = re.compile(r"[ \t\r\n\f]+")
# Held together while wrapping, turned back into a space afterwards.
NBSP = "\u00a0"


def body_to_text(soup: BeautifulSoup | Tag) -> str:
    """The cleaned body tree → wrapped plaintext blocks separated by blank lines."""
    blocks = render_blocks(soup, WIDTH)
    return "\n\n".join(block for block in blocks if block.strip()).replace(NBSP, " ")


def render_blocks(parent: Tag, width: int) -> list[str]:
    """Render the children of ``parent`` as a list of blocks (each one string, maybe multi-line).

    Runs of inline content between block elements become one wrapped paragraph.
    """
    blocks: list[str] = []
    inline_run: list[str] = []

    def flush() -> None:
        text = collapse("".join(inline_run))
        if text:
            blocks.append(wrap(text, width))
        inline_run.clear()

    for child in parent.children:
        if isinstance(child, Tag) and child.name in BLOCK_TAGS:
            flush()
            blocks.extend(render_block(child, width))
        else:
            inline_run.append(inline_text(child))
    flush()
    return blocks


def render_block(tag: Tag, width: int) -> list[str]:
    name = tag.name
    if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return [heading(tag, width)]
    if name in ("ul", "ol"):
        return [render_list(tag, width)]
    if name == "pre":
        return [indent(tag.get_text().rstrip("\n").expandtabs(4), "    ")]
    if name == "blockquote":
        inner = "\n\n".join(render_blocks(tag, width - 2))
        return [indent(inner, "> ", blank="> ")]
    if name == "table":
        return [render_table(tag, width)]
    if name == "hr":
        return ["-" * 20]
    return render_blocks(tag, width)


def heading(tag: Tag, width: int) -> str:
    text = collapse(inline_children(tag))
    underline = HEADING_UNDERLINES.get(tag.name)
    if underline:
        wrapped = wrap(text, width)
        longest = max(len(line) for line in wrapped.splitlines())
        return f"{wrapped}\n{underline * longest}"
    level = int(tag.name[1])
    return wrap(f"{'#' * level} {text}", width)


def render_list(tag: Tag, width: int) -> str:
    ordered = tag.name == "ol"
    start_text = attribute_text(tag, "start")
    start = int(start_text) if start_text.isdigit() else 1
    items = []
    for number, item in enumerate(tag.find_all("li", recursive=False), start=start):
        marker = f"{number}. " if ordered else "* "
        inner_width = max(width - len(marker), 20)
        body = "\n".join(render_blocks(item, inner_width)) or ""
        first, *rest = body.split("\n") if body else [""]
        lines = [marker + first] + [(" " * len(marker) + line) if line else "" for line in rest]
        items.append("\n".join(lines))
    return "\n".join(items)


def render_table(table: Tag, width: int) -> str:
    """Aligned columns when the table fits; otherwise one block of ``header: value`` per row."""
    rows = [
        [collapse(inline_children(cell)).replace("\n", " ")
         for cell in row.find_all(["th", "td"], recursive=False)]
        for row in table.find_all("tr")
    ]
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    columns = max(len(row) for row in rows)
    rows = [row + [""] * (columns - len(row)) for row in rows]
    widths = [max(len(row[index]) for row in rows) for index in range(columns)]
    has_header = table.find("th") is not None
    if sum(widths) + 3 * (columns - 1) <= width:
        lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                 for row in rows]
        if has_header:
            lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(lines)
    header, body = (rows[0], rows[1:]) if has_header else ([""] * columns, rows)
    records = []
    for row in body:
        fields = [f"{name}: {value}" if name else value for name, value in zip(header, row, strict=False)]
        records.append(wrap("- " + "; ".join(field for field in fields if field), width, "  "))
    return "\n".join(records)


def inline_children(tag: Tag) -> str:
    return "".join(inline_text(child) for child in tag.children)


def inline_text(node) -> str:
    if isinstance(node, NavigableString):
        # A newline in the source is a soft break: only <br> ends a line.
        return SPACES.sub(" ", str(node))
    if not isinstance(node, Tag):
        return ""
    name = node.name
    if name == "br":
        return "\n"
    if name == "a":
        return link_text(node)
    if name == "img":
        alt = attribute_text(node, "alt").strip()
        return f"[{alt}]" if alt else "[image]"
    if name == "code":
        return f"`{node.get_text()}`"
    if name in BLOCK_TAGS:  # a block inside inline content (rare in HTML sources)
        return "\n" + "\n\n".join(render_blocks(node, WIDTH)) + "\n"
    return inline_children(node)


def link_text(link: Tag) -> str:
    href = attribute_text(link, "href")
    text = collapse(inline_children(link))
    if not href:
        return text
    shown = href.removeprefix("mailto:")
    if not text or text in (href, shown):
        return f"<{href}>"
    return f"{text} <{href}>"


def collapse(text: str) -> str:
    """Fold runs of whitespace to one space, keeping explicit line breaks from ``<br>``."""
    lines = [SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def wrap(text: str, width: int, subsequent_indent: str = "") -> str:
    return "\n".join(
        textwrap.fill(line, width=width, break_long_words=False, break_on_hyphens=False,
                      subsequent_indent=subsequent_indent)
        for line in text.split("\n")
    )


def indent(text: str, prefix: str, blank: str = "") -> str:
    return "\n".join(prefix + line if line else blank.rstrip() for line in text.split("\n"))
