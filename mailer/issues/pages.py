"""A rendered HTML page of the issue: its article body, cleaned of anything active by the one
allow-list sanitizer, :mod:`mailer.sanitize`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urljoin

from mailer.domain import Issue
from mailer.errors import MalformedIssue
from mailer.issues.common import DEFAULT_SITE_URL, is_web_url, number_from_title
from mailer.sanitize import clean_html

_ARTICLE_SELECTORS = ("article", "[itemprop=articleBody]", ".post-content", ".entry-content", "main")
_INNER_BODY_SELECTORS = ("[itemprop=articleBody]", ".post-content", ".entry-content")
_TITLE_SEPARATORS = re.compile(r"\s+[|·—–-]\s+")


def parse_html_page(html: str, *, source_path: Path | None = None, site_url: str = DEFAULT_SITE_URL) -> Issue:
    """The issue's article page as the site renders it: its article body, title, date and canonical URL."""
    from bs4 import BeautifulSoup

    source = str(source_path) if source_path else "the HTML page"
    soup = BeautifulSoup(html, "html.parser")
    container = _article_container(soup)
    if container is None:
        raise MalformedIssue(
            f"{source} has no article body (looked for <article>, [itemprop=articleBody], "
            f".post-content, .entry-content, <main>)"
        )
    title = _page_title(soup, container)
    if not title:
        raise MalformedIssue(f"{source} has no title (no <h1>, og:title meta or <title>)")
    web_url = _canonical_url(soup)
    issue_date, published_at = _page_date(soup, container, source)

    body = _inner_body(container)
    _drop_title_heading(body, title)
    _absolutize_urls(body, web_url or site_url.rstrip("/") + "/")
    # Sanitized last, so no attribute the steps above touched escapes it (comments go too).
    fragment = clean_html(body.decode_contents()).strip()
    if not fragment:
        raise MalformedIssue(f"{source}: the article body is empty")
    return Issue(
        title=title,
        body=fragment + "\n",
        body_format="html",
        number=number_from_title(title),
        date=issue_date,
        published_at=published_at,
        category=_meta_content(soup, "article:section"),
        tags=tuple(_meta_contents(soup, "article:tag")),
        web_url=web_url,
        source_path=source_path,
        source_kind="html",
    )


def _article_container(soup):
    for selector in _ARTICLE_SELECTORS:
        found = soup.select_one(selector)
        if found is not None:
            return found
    return None


def _inner_body(container):
    """Inside an <article>, prefer the element that holds only the text (not header and footer)."""
    for selector in _INNER_BODY_SELECTORS:
        found = container.select_one(selector)
        if found is not None:
            return found
    for part in container.find_all(["header", "footer"], recursive=False):
        part.extract()
    return container


def _page_title(soup, container) -> str | None:
    heading = container.find("h1") or soup.find("h1")
    if heading and heading.get_text(strip=True):
        return _clean_space(heading.get_text(" ", strip=True))
    og_title = _meta_content(soup, "og:title")
    if og_title:
        return og_title
    if soup.title and soup.title.get_text(strip=True):
        return _title_without_site_name(_clean_space(soup.title.get_text(" ", strip=True)))
    return None


def _title_without_site_name(title: str) -> str:
    parts = _TITLE_SEPARATORS.split(title)
    for part in parts:
        if number_from_title(part) is not None:
            return part.strip()
    return title


def _canonical_url(soup) -> str | None:
    for link in soup.find_all("link", href=True):
        rel = link.get("rel") or []
        rel = rel if isinstance(rel, list) else [rel]
        if "canonical" in (r.lower() for r in rel) and is_web_url(link["href"]):
            return link["href"].strip()
    og_url = _meta_content(soup, "og:url")
    return og_url if og_url and is_web_url(og_url) else None


def _page_date(soup, container, source: str) -> tuple[date | None, datetime | None]:
    time_tag = container.find("time", attrs={"datetime": True}) or soup.find("time", attrs={"datetime": True})
    raw = time_tag["datetime"] if time_tag else (
        _meta_content(soup, "article:published_time") or _meta_content(soup, "date")
    )
    if not raw:
        return None, None
    raw = raw.strip()
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw), None
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise MalformedIssue(f"{source}: the page's date {raw!r} is not an ISO 8601 date") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # The calendar date as the page states it (its own zone), the instant in UTC.
    return parsed.date(), parsed.astimezone(UTC)


def _meta_content(soup, name: str) -> str | None:
    values = _meta_contents(soup, name)
    return values[0] if values else None


def _meta_contents(soup, name: str) -> list[str]:
    found = soup.find_all("meta", attrs={"property": name}) + soup.find_all("meta", attrs={"name": name})
    return [_clean_space(m["content"]) for m in found if m.get("content") and m["content"].strip()]


def _drop_title_heading(body, title: str) -> None:
    heading = body.find("h1")
    if heading is not None and _clean_space(heading.get_text(" ", strip=True)) == title:
        heading.decompose()


def _absolutize_urls(body, base: str) -> None:
    for tag in body.find_all(True):
        for attribute in ("href", "src"):
            value = tag.get(attribute)
            if isinstance(value, str) and value and not value.startswith("#"):
                tag[attribute] = urljoin(base, value.strip())


def _clean_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
