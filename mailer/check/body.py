"""Links, images and headings of a Markdown issue as Python-Markdown renders them, each fault
traced back to its source line."""

from __future__ import annotations

import re
from collections import defaultdict
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, NavigableString

from mailer.check.findings import Finding, error, shorten, warning
from mailer.check.locate import Locator
from mailer.domain import Issue
from mailer.render.body import markdown_to_html
from mailer.sanitize import attribute_text

# Hosts whose links hide where they lead; readers (and spam filters) distrust them.
URL_SHORTENERS = frozenset({
    "bit.ly", "t.co", "goo.gl", "tinyurl.com", "ow.ly", "is.gd", "buff.ly", "rebrand.ly",
    "cutt.ly", "shorturl.at", "lnkd.in", "tiny.cc", "rb.gy", "t.ly", "s.id", "bl.ink", "v.gd",
    "dlvr.it", "trib.al", "shorturl.com", "clck.ru", "qr.ae", "amzn.to", "forms.gle",
})
_UNPARSED_INLINE = re.compile(r"!?\[[^\[\]\n]*\]\([^\n]{0,60}")
_UNRESOLVED_REFERENCE = re.compile(r"!?\[[^\[\]\n]+\]\[[^\[\]\n]*\]")
# "[text] (https://…)": the space stops Markdown, and readers see the brackets and the address.
_SPACED_LINK = re.compile(r"!?\[[^\[\]\n]+\][ \t]+\((?:https?://|/)[^\s)]*\)")
# Link words that are an address or a bare domain ("docs.rs", "https://blog.rust-lang.org/…").
_ADDRESS_WORDS = re.compile(r"^(?:https?://)?(?:www\.)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?:[/:?#]\S*)?$", re.I)
_DOMAIN_LIKE = re.compile(r"^(www\.)?[a-z0-9-]+(\.[a-z0-9-]+)*\.(com|org|net|io|dev|rs|me|co|app|xyz|info|edu)(/|$)", re.I)


def check_markdown_body(path: str, source: str, issue: Issue) -> list[Finding]:
    """Links, images and headings as Python-Markdown renders them, traced back to source lines."""
    soup = BeautifulSoup(markdown_to_html(issue.body), "html.parser")
    locate = Locator(source.splitlines())
    findings: list[Finding] = []
    findings.extend(_unparsed_syntax(path, soup, locate))
    findings.extend(_link_findings(path, soup, locate, issue))
    findings.extend(_image_findings(path, soup, locate))
    findings.extend(_heading_findings(path, locate))
    return findings


def _unparsed_syntax(path: str, soup: BeautifulSoup, locate: Locator) -> list[Finding]:
    findings = []
    for node in soup.find_all(string=True):
        if not isinstance(node, NavigableString) or node.find_parent(["code", "pre"]) is not None:
            continue
        for match in _UNPARSED_INLINE.finditer(str(node)):
            snippet = match.group(0)
            findings.append(error(path, locate.find(snippet[:40]), "unparsed-link",
                                   f"Markdown link syntax left as text (closing parenthesis missing?): "
                                   f"{shorten(snippet)!r}"))
        for match in _SPACED_LINK.finditer(str(node)):
            snippet = match.group(0)
            findings.append(error(path, locate.find(snippet[:40]), "spaced-link",
                                   f"Markdown link broken by a space between ] and (: readers see "
                                   f"{shorten(snippet)!r} as text; remove the space"))
        for match in _UNRESOLVED_REFERENCE.finditer(str(node)):
            findings.append(error(path, locate.find(match.group(0)), "link-without-target",
                                   f"link without a target: {match.group(0)!r} has no '[label]: URL' line"))
    return findings


def _link_findings(path: str, soup: BeautifulSoup, locate: Locator, issue: Issue) -> list[Finding]:
    findings = []
    lines_of: dict[str, list[int]] = defaultdict(list)
    for link in soup.find_all("a"):
        href = attribute_text(link, "href").strip()
        text = link.get_text(" ", strip=True)
        if not href:
            line = locate.find(f"[{text}]") if text else locate.find("]()")
            findings.append(error(path, line, "link-without-target", f"link without a target: [{text}]"))
            continue
        if href.startswith("#") or href.lower().startswith("mailto:"):
            continue
        line = locate.find(href)
        problem = _target_problem(href, issue)
        if problem:
            findings.append(error(path, line, *problem))
            continue
        findings.extend(_url_warnings(path, line, href))
        findings.extend(_domain_mismatch(path, line, text, href))
        lines_of[href.rstrip("/")].append(line)
    findings.extend(_duplicate_link_warnings(path, lines_of))
    return findings


def _duplicate_link_warnings(path: str, lines_of: dict[str, list[int]]) -> list[Finding]:
    """One warning per repeated address, at its second use, naming every line that has it."""
    found = []
    for url, lines in lines_of.items():
        if len(lines) > 1:
            where = ", ".join(str(n) for n in sorted(set(lines)))
            found.append(warning(path, lines[1], "duplicate-link",
                                  f"{url} is linked {len(lines)} times (lines {where})", url))
    return found


def _target_problem(href: str, issue: Issue) -> tuple[str, str] | None:
    if any(ch.isspace() for ch in href):
        return ("broken-link", f"link target {shorten(href)!r} has a space in it (a parenthesis or '<>' missing?)")
    parts = urlsplit(href)
    if parts.scheme or href.startswith("//"):
        return None
    if "{" in href:
        return ("relative-link", f"link {href!r} uses a site-generator placeholder; "
                                 "the mail cannot resolve it: write the full https:// address")
    if _DOMAIN_LIKE.match(href):
        return ("relative-link", f"link {href!r} has no https:// (it would point into this site)")
    if not href.startswith("/") and not issue.web_url:
        return ("relative-link", f"relative link {href!r} cannot be made absolute: the issue has no web "
                                 "address (Date header) to resolve it against")
    return None


def _url_warnings(path: str, line: int, href: str) -> list[Finding]:
    parts = urlsplit(href)
    host = (parts.hostname or "").lower().removeprefix("www.")
    found = []
    if parts.scheme.lower() == "http":
        found.append(warning(path, line, "insecure-link", f"link is not https: {href}", href))
    if host in URL_SHORTENERS:
        found.append(warning(path, line, "url-shortener",
                              f"link goes through the URL shortener {host}: link to where it leads",
                              href))
    return found


def _domain_mismatch(path: str, line: int, text: str, href: str) -> list[Finding]:
    """Link words naming one domain while the link goes to another: what a phishing mail does,
    and what spam filters score as such (rspamd's PHISHING, +2.0 on real TWiR content)."""
    named = _ADDRESS_WORDS.match(text.strip().rstrip(".,;:!)"))
    target = (urlsplit(href).hostname or "").lower()
    if not named or not target:
        return []
    shown = named.group(1).lower()
    if _base_domain(shown) == _base_domain(target):
        return []
    return [warning(path, line, "link-text-domain",
                    f"link text names {shown} but the link goes to {target} "
                    "(spam filters score this as phishing): let the words name where it goes",
                    href)]


def _base_domain(host: str) -> str:
    """The last two labels: near enough to the registrable domain for TWiR's links (www.,
    blog. and docs. of one site count as that site)."""
    return ".".join(host.removeprefix("www.").split(".")[-2:])


def _image_findings(path: str, soup: BeautifulSoup, locate: Locator) -> list[Finding]:
    findings = []
    for image in soup.find_all("img"):
        src = attribute_text(image, "src").strip()
        if not attribute_text(image, "alt").strip():
            line = locate.find(src) if src else locate.find("![")
            findings.append(error(path, line, "image-without-alt",
                                   f"image without alt text: {shorten(src) or '(no source)'}"))
    return findings


def _heading_findings(path: str, locate: Locator) -> list[Finding]:
    """The mail's title is the one <h1>, so the body's headings start at level 2 at most."""
    findings = []
    previous = 1
    for line, level, text in locate.headings():
        if level > previous + 1:
            findings.append(warning(path, line, "heading-skip",
                                     f"heading {text!r} is level {level} after level {previous}: "
                                     f"a level is skipped", text))
        previous = level
    return findings
