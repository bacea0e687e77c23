"""Link counts without identifying readers (issue 25 §1): number an issue's links, point them home.

Pure: the HTML part of a rendered issue in, the same part with each reader-facing link replaced by
``BASE_URL/l/<issue>/<n>`` and the table of what each ``n`` stands for out. The rewrite runs once
per issue, before :func:`mailer.render.personalise`, so every reader's copy of a link is the same
URL: nothing in it can tell one reader from another.

Never rewritten: the unsubscribe and manage links (per reader, and they must work without a round
trip through a counter), links already on the newsletter's own host (its token links), and
anything that is not http(s) (``mailto:``, fragments).
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass

# The per-recipient placeholders (mailer.render.pipeline); named here as text so this module does
# not import the pipeline that imports it.
PER_READER_MARK = "%%MAILER_"
# lxml writes attributes in double quotes; the sanitizer's output is that serialisation.
ANCHOR = re.compile(r'<a\b(?P<before>[^>]*?)\bhref="(?P<href>[^"]*)"(?P<after>[^>]*)>(?P<inner>.*?)</a>',
                    re.IGNORECASE | re.DOTALL)
HEADING = re.compile(r"<h2\b[^>]*>(?P<inner>.*?)</h2>", re.IGNORECASE | re.DOTALL)
TAG = re.compile(r"<[^>]+>")
SPACES = re.compile(r"\s+")
TEXT_MAX = 200  # a link's words as the figures show them; longer is a paragraph, not a label


@dataclass(frozen=True)
class IssueLink:
    """One counted link: its place in the issue, where it goes, its words, its ``##`` section."""

    n: int
    url: str
    text: str
    section: str


def counter_url(base_url: str, issue_number: int, n: int) -> str:
    return f"{base_url.rstrip('/')}/l/{issue_number}/{n}"


def words(fragment: str) -> str:
    return SPACES.sub(" ", html_lib.unescape(TAG.sub(" ", fragment))).strip()[:TEXT_MAX]


def is_counted(url: str, base_url: str) -> bool:
    """Whether a link is a reader-facing outside link the counter may stand in for."""
    if PER_READER_MARK in url:
        return False
    if not url.lower().startswith(("http://", "https://")):
        return False
    return not url.startswith(base_url.rstrip("/") + "/")


def section_at(html: str, position: int) -> str:
    """The text of the last ``<h2>`` before ``position``: the issue's ``##`` heading it sits under."""
    heading = ""
    for match in HEADING.finditer(html, 0, position):
        heading = words(match.group("inner"))
    return heading


def count_links(html: str, *, base_url: str, issue_number: int) -> tuple[str, tuple[IssueLink, ...]]:
    """``html`` with its counted links pointing at the counter, and what each number stands for.

    The same URL twice gets two numbers: the editors want to know which place in the issue drew
    the click, and the redirect only ever goes to the URL recorded for that number.
    """
    links: list[IssueLink] = []

    def rewrite(match: re.Match) -> str:
        url = html_lib.unescape(match.group("href"))
        if not is_counted(url, base_url):
            return match.group(0)
        n = len(links) + 1
        links.append(IssueLink(n=n, url=url, text=words(match.group("inner")),
                               section=section_at(html, match.start())))
        href = html_lib.escape(counter_url(base_url, issue_number, n), quote=True)
        return f'<a{match.group("before")}href="{href}"{match.group("after")}>{match.group("inner")}</a>'

    return ANCHOR.sub(rewrite, html), tuple(links)


# -- who followed a counted link: a person, or a machine ---------------------------------------

# Parts of a User-Agent that mark a link scanner, a preview bot or a script, compared without
# case. Short on purpose: a scanner that sends a browser's User-Agent cannot be told apart, and a
# longer list would only guess. An empty User-Agent counts as a machine too.
MACHINE_AGENTS = (
    "bot", "spider", "crawl", "preview", "scanner", "slurp", "facebookexternalhit",
    "barracuda", "mimecast", "proofpoint", "safelinks", "symantec", "forcepoint",
    "python-requests", "python-urllib", "aiohttp", "httpx", "curl", "wget", "go-http-client",
    "okhttp", "java/", "libwww-perl", "headlesschrome",
)


def is_machine(method: str, user_agent: str | None, purpose: str | None = None,
               sec_purpose: str | None = None) -> bool:
    """Whether a request for a counted link is a machine's, not a reader's click: a HEAD, a
    prefetch (``Purpose: prefetch``, ``Sec-Purpose`` naming prefetch) or a known machine's
    User-Agent (:data:`MACHINE_AGENTS`, or none at all)."""
    if method.upper() == "HEAD":
        return True
    if (purpose or "").strip().lower() == "prefetch" or "prefetch" in (sec_purpose or "").lower():
        return True
    agent = (user_agent or "").strip().lower()
    return not agent or any(part in agent for part in MACHINE_AGENTS)
