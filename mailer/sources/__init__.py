"""Where issues come from: ``MAILER_ISSUE_SOURCE`` picks one.

* ``folder`` (the default): TWiR Markdown in ``MAILER_ISSUES_DIR``;
* ``git``: ``content/`` of a repository and branch, cloned then fetched into the cache directory;
* ``feed``: the site's Atom or RSS feed, then the issue's page;
* ``atproto``: the publication's ``site.standard.document`` records on its PDS.

Every network step times out, retries with backoff, sends a User-Agent and keeps a cache so an
hourly cron does not fetch everything again. Any failure is one :class:`SourceError` line raised
before anything is rendered or sent.

Network I/O: this package sits beside the transports, below the joiners, and never touches the
database.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from mailer.config import Settings
from mailer.domain import Issue
from mailer.errors import ConfigError, NotAnIssueNumber
from mailer.issues import load_issue_by_number
from mailer.sources.http import Fetcher, FetchPolicy

__all__ = ["load_issue_from_source"]


def load_issue_from_source(settings: Settings, wanted: int | str) -> Issue:
    """Issue ``wanted`` (a number or ``"latest"``) from the configured source."""
    kind = settings.issue_source
    if kind == "folder":
        return load_issue_by_number(Path(settings.issues_dir), wanted, site_url=settings.site_url)
    policy = FetchPolicy(timeout=settings.source_timeout, tries=settings.source_retries,
                         allow_private=settings.source_allow_private)
    # Resolved once, against the folder mailer was started in (the default is relative).
    cache = Path(settings.source_cache_dir).expanduser().absolute()
    if kind == "git":
        from mailer.sources.git import GitCheckout

        url = _required(settings.source_git_url, "MAILER_SOURCE_GIT_URL", kind)
        checkout = GitCheckout(url, settings.source_git_branch, settings.source_git_path, cache, policy)
        # A checkout made before links were checked out as files may still hold links.
        return load_issue_by_number(checkout.update(), wanted, site_url=settings.site_url, follow_symlinks=False)
    number = parse_wanted(wanted)
    if kind == "feed":
        from mailer.sources.feed import FeedSource

        url = _web_url(_required(settings.source_feed_url, "MAILER_SOURCE_FEED_URL", kind), "MAILER_SOURCE_FEED_URL")
        return FeedSource(url, Fetcher("feed", cache, policy, site=url), settings.site_url).load(number)
    from mailer.sources.atproto import AtprotoSource

    pds = _web_url(_required(settings.source_pds_url, "MAILER_SOURCE_PDS_URL", kind), "MAILER_SOURCE_PDS_URL")
    repo = _required(settings.source_atproto_repo, "MAILER_SOURCE_ATPROTO_REPO", kind)
    return AtprotoSource(pds, repo, Fetcher("atproto", cache, policy, site=pds), cache).load(number)


def parse_wanted(wanted: int | str) -> int | None:
    """A positive issue number, or None for ``latest``."""
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
        return wanted
    text = str(wanted).strip()
    if text.lower() == "latest":
        return None
    if text.isascii() and text.isdigit() and int(text) > 0:
        return int(text)
    raise NotAnIssueNumber(f"{wanted!r} is not an issue number: give a number such as 644, or 'latest'")


def _required(value: str | None, variable: str, kind: str) -> str:
    if not value or not value.strip():
        raise ConfigError(f"MAILER_ISSUE_SOURCE={kind} needs {variable}")
    return value.strip()


def _web_url(value: str, variable: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{variable} must be an http(s) address (got {value!r})")
    return value
