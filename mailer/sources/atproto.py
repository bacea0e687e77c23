"""Issues from standard.site records on AT Protocol: the publication's ``site.standard.document``
records, listed from its PDS with ``com.atproto.repo.listRecords``.

Records come newest first. What was seen is kept in an index in the cache directory, so once the
whole collection has been read, a run stops at the first page that holds nothing new: an hourly
cron reads one page.

Only the index (each record's cid and issue number) stays in memory; each issue's record is
written to its own file as its page is read and only the wanted one is read back, so memory holds
one page at a time however much a PDS sends (issue 19).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlencode

from mailer.domain import Issue
from mailer.errors import IssueNotFound, MalformedIssue, SourceError
from mailer.issues import STANDARD_DOCUMENT_TYPE, parse_standard_site
from mailer.sources.http import Fetcher

PAGE_SIZE = 100  # listRecords' maximum
MAX_PAGES = 100  # 10,000 records: far beyond any publication; stops a cursor that never ends
MAX_RECORD_BYTES = 5 * 1024 * 1024  # one issue's record, as for an issue file; a real one is ~30 KB
INDEX_VERSION = 2  # the first index kept every record's value in itself


class AtprotoSource:
    def __init__(self, pds_url: str, repo: str, fetcher: Fetcher, cache_dir: Path) -> None:
        self.pds_url, self.repo, self.fetcher = pds_url.rstrip("/"), repo, fetcher
        digest = hashlib.sha256(f"{self.pds_url}\n{repo}".encode()).hexdigest()[:16]
        self.index_path = Path(cache_dir) / "atproto" / f"{digest}.v{INDEX_VERSION}.json"
        self.records_dir = Path(cache_dir) / "atproto" / digest

    def load(self, number: int | None) -> Issue:
        try:
            return self._load(number, self._read_index())
        except _RecordGone:  # the cache lost a record file: read the collection again
            return self._load(number, {"records": {}, "complete": False})

    def _load(self, number: int | None, index: dict) -> Issue:
        index = self._refresh(index)
        numbered = {uri: rec for uri, rec in index["records"].items() if rec.get("number")}
        if not numbered:
            raise SourceError(f"issue source atproto: {self.repo} on {self.pds_url} has no "
                              f"{STANDARD_DOCUMENT_TYPE} record whose title ends in an issue number")
        wanted = number if number is not None else max(rec["number"] for rec in numbered.values())
        matches = [rec for rec in numbered.values() if rec["number"] == wanted]
        if not matches:
            raise IssueNotFound(f"no issue {wanted} among the {STANDARD_DOCUMENT_TYPE} records of "
                                f"{self.repo} on {self.pds_url}")
        return parse_standard_site(self._read_value(matches[0]))

    def _refresh(self, index: dict) -> dict:
        cursor, known_before = None, index.get("complete", False)
        for _ in range(MAX_PAGES):
            records, cursor = self._page(cursor)
            fresh = 0
            for record in records:
                fresh += self._remember(index, record)
            if not cursor or not records:
                index["complete"] = True
                break
            if known_before and not fresh:
                break  # everything older was read on an earlier run
        self._write_index(index)
        return index

    def _page(self, cursor: str | None) -> tuple[list[dict], str | None]:
        query = {"repo": self.repo, "collection": STANDARD_DOCUMENT_TYPE, "limit": PAGE_SIZE}
        if cursor:
            query["cursor"] = cursor
        url = f"{self.pds_url}/xrpc/com.atproto.repo.listRecords?{urlencode(query)}"
        try:
            page = json.loads(self.fetcher.get(url))
            records = page["records"]
            assert isinstance(records, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise SourceError(f"issue source atproto: {url} is not a listRecords answer") from None
        cursor = page.get("cursor")
        return [r for r in records if isinstance(r, dict)], cursor if isinstance(cursor, str) else None

    def _remember(self, index: dict, record: dict) -> int:
        uri, cid, value = record.get("uri"), record.get("cid"), record.get("value")
        if not isinstance(uri, str) or not isinstance(value, dict):
            return 0
        if uri in index["records"] and index["records"][uri].get("cid") == cid:
            return 0
        text = json.dumps(value)
        try:
            number = parse_standard_site(value).number if len(text) <= MAX_RECORD_BYTES else None
        except MalformedIssue:
            number = None  # not a readable document: remembered, never picked
        entry = {"cid": cid, "number": number, "file": hashlib.sha256(uri.encode()).hexdigest()[:32]}
        if number:
            self._write(self.records_dir / f"{entry['file']}.json", text)
        index["records"][uri] = entry
        return 1

    def _read_value(self, entry: dict) -> dict:
        try:
            return json.loads((self.records_dir / f"{entry['file']}.json").read_text())
        except (OSError, ValueError, KeyError):
            raise _RecordGone from None

    def _read_index(self) -> dict:
        try:
            index = json.loads(self.index_path.read_text())
            if isinstance(index.get("records"), dict):
                return index
        except (OSError, ValueError, AttributeError):
            pass
        return {"records": {}, "complete": False}

    def _write_index(self, index: dict) -> None:
        self._write(self.index_path, json.dumps(index))

    @staticmethod
    def _write(path: Path, text: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(text)
            temporary.replace(path)
        except OSError as error:
            raise SourceError(f"issue source atproto: cannot write the cache {path}: "
                              f"{error.strerror or error}") from None


class _RecordGone(Exception):
    """The index names a record whose file is no longer in the cache."""
