"""Issues from the site's feed (Atom or RSS): the entry whose title ends in the issue number
leads to the issue's page, whose article body is the issue (as :func:`parse_html_page` reads it)."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from mailer.domain import Issue
from mailer.errors import IssueNotFound, MalformedIssue, SourceError
from mailer.issues import parse_html_page
from mailer.sources.http import Fetcher

ATOM = "{http://www.w3.org/2005/Atom}"
_TRAILING_NUMBER = re.compile(r"(\d+)\s*$")


@dataclass(frozen=True)
class FeedEntry:
    title: str
    url: str
    number: int | None


class FeedSource:
    def __init__(self, feed_url: str, fetcher: Fetcher, site_url: str) -> None:
        self.feed_url, self.fetcher, self.site_url = feed_url, fetcher, site_url

    def load(self, number: int | None) -> Issue:
        """Issue ``number``, or the highest-numbered one in the feed when ``number`` is None."""
        entries = [e for e in parse_feed(self.fetcher.get(self.feed_url), self.feed_url) if e.number]
        entry = _pick(entries, number, self.feed_url)
        page = self.fetcher.get(entry.url)
        try:
            issue = parse_html_page(page.decode("utf-8", errors="replace"), site_url=self.site_url)
        except MalformedIssue as error:
            raise SourceError(f"issue source feed: the page of issue {entry.number} ({entry.url}) "
                              f"cannot be read: {error}") from None
        # The feed is the authority on which page is which issue; the page may omit either.
        return dataclasses.replace(issue, number=issue.number or entry.number,
                                   web_url=issue.web_url or entry.url)


def parse_feed(data: bytes, feed_url: str) -> list[FeedEntry]:
    if b"<!ENTITY" in data[:4096]:
        raise SourceError(f"issue source feed: {feed_url} declares XML entities; refusing to expand them")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise SourceError(f"issue source feed: {feed_url} is not an Atom or RSS feed ({error})") from None
    if root.tag == f"{ATOM}feed":
        return [_atom_entry(entry, feed_url) for entry in root.iter(f"{ATOM}entry")]
    if root.tag == "rss" or root.find("channel") is not None:
        return [_rss_item(item, feed_url) for item in root.iter("item")]
    raise SourceError(f"issue source feed: {feed_url} is neither Atom nor RSS (root <{root.tag}>)")


def _atom_entry(entry: ET.Element, feed_url: str) -> FeedEntry:
    title = (entry.findtext(f"{ATOM}title") or "").strip()
    href = ""
    for link in entry.findall(f"{ATOM}link"):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            href = link.get("href", "")
            break
    return _entry(title, href, feed_url)


def _rss_item(item: ET.Element, feed_url: str) -> FeedEntry:
    title = (item.findtext("title") or "").strip()
    href = (item.findtext("link") or "").strip()
    guid = item.find("guid")
    if not href and guid is not None and guid.get("isPermaLink", "true") == "true":
        href = (guid.text or "").strip()
    return _entry(title, href, feed_url)


def _entry(title: str, href: str, feed_url: str) -> FeedEntry:
    url = urljoin(feed_url, href.strip()) if href.strip() else ""
    if urlsplit(url).scheme not in ("http", "https"):
        url = ""
    match = _TRAILING_NUMBER.search(title)
    return FeedEntry(title, url, int(match[1]) if match and url else None)


def _pick(entries: list[FeedEntry], number: int | None, feed_url: str) -> FeedEntry:
    if not entries:
        raise SourceError(f"issue source feed: {feed_url} lists no issues "
                          "(no entry whose title ends in a number and that links to a page)")
    if number is None:
        return max(entries, key=lambda e: e.number or 0)
    for entry in entries:
        if entry.number == number:
            return entry
    known = sorted(e.number for e in entries if e.number)
    raise IssueNotFound(f"no issue {number} in the feed {feed_url} (it lists {known[0]}–{known[-1]})")
