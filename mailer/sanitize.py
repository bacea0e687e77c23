"""The one HTML sanitizer: an allow-list, applied by ammonia (through nh3) to every piece of HTML
that can end up in a reader's mail, whether an issue body or the article of a rendered web page.

Anything not listed here goes: tags not in :data:`TAGS` are unwrapped (their words stay),
attributes not in :data:`ATTRIBUTES` are dropped, and a URL whose scheme is not in
:data:`URL_SCHEMES` loses its attribute (relative URLs pass: the callers make them absolute).
Tags that could run, load, submit or draw something are removed with all they hold, and so are
comments (editor notes are not for readers).

Pure: no database, no network.
"""

from __future__ import annotations

import html as html_lib
import re
from urllib.parse import urlsplit

import nh3

# What an issue is written with (Python-Markdown "extra") and what an article page holds.
TAGS = frozenset({
    "a", "abbr", "article", "aside", "b", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li",
    "mark", "ol", "p", "pre", "q", "s", "samp", "section", "small", "span", "strike", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt",
    "u", "ul", "var",
})
# Per tag ("*": on every tag). No event handlers, no class (the mail's style sheet owns classes).
ATTRIBUTES = {
    "*": {"id", "title", "lang", "dir", "style"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
}
# javascript:, data:, vbscript: and file: never become a link or an image in a mail.
URL_SCHEMES = frozenset({"http", "https", "mailto", "irc", "ircs", "ftp", "tel", "xmpp", "matrix"})
# Of those, what a mail client may load by itself (an image's src): the web only.
LOADED_URL_SCHEMES = frozenset({"http", "https"})

# Removed with everything inside them: what could run, load, submit or draw in a mail client.
REMOVED_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
    "input", "button", "select", "textarea", "noscript", "template", "link", "meta", "base",
    "svg", "math",
})
# A style attribute keeps only these (Markdown tables align their cells with it).
STYLE_PROPERTIES = frozenset({"text-align", "vertical-align"})
# Old mail clients ran CSS expressions; nothing in an allowed property needs a function.
_ACTIVE_STYLE = re.compile(r"expression\s*\(|url\s*\(|script\s*:", re.IGNORECASE)


def _check_attribute(tag: str, attribute: str, value: str) -> str | None:
    """What ammonia's lists cannot say: which styles and which image sources may stay."""
    if attribute == "style" and (not value.strip() or _ACTIVE_STYLE.search(value)):
        return None  # an empty style is only bytes
    if tag == "img" and attribute == "src" and _scheme(value) not in LOADED_URL_SCHEMES | {""}:
        return None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags=set(REMOVED_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
    attribute_filter=_check_attribute,
    strip_comments=True,
    link_rel=None,  # a mail has no opener to protect, and every byte counts against Gmail's clip
    url_schemes=set(URL_SCHEMES),
    filter_style_properties=set(STYLE_PROPERTIES),
)


def attribute_text(tag, name: str) -> str:
    """An HTML attribute as one string, "" when absent: BeautifulSoup gives a list for the
    multi-valued ones (class, rel), and the links and images read here want the words."""
    value = tag.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(value)


def clean_html(fragment: str) -> str:
    """``fragment`` with everything outside the allow-list removed."""
    return _CLEANER.clean(fragment)


def is_safe_url(value: str) -> bool:
    """Would :func:`clean_html` keep this URL? Relative URLs, and absolute ones with a listed scheme.

    For callers that must tell an editor which link lost its target; the sanitizer itself does
    not rely on it.
    """
    scheme = _scheme(html_lib.unescape(str(value)))
    return scheme == "" or scheme in URL_SCHEMES


def is_loadable_url(value: str) -> bool:
    """May a mail client load this by itself (an image's src)? Relative URLs, http and https."""
    return _scheme(html_lib.unescape(str(value))) in LOADED_URL_SCHEMES | {""}


def _scheme(url: str) -> str:
    # Control characters and whitespace inside a scheme ("java\tscript:") must not slip past.
    return urlsplit(re.sub(r"[\x00-\x20]", "", url)).scheme.lower()
