"""Build Mailchimp audience exports for tests and benchmarks: the layout Mailchimp writes (one
quoted CSV per member status, CRLF line ends, optional BOM), with made-up readers."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

COMMON = ["MEMBER_RATING", "OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE",
          "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC", "REGION", "LAST_CHANGED", "LEID",
          "EUID", "NOTES", "TAGS"]
EXTRA = {
    "subscribed": [],
    "nonsubscribed": [],
    "unsubscribed": ["UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
                     "UNSUB_REASON_OTHER"],
    "cleaned": ["CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"],
}
MERGE_FIELDS = ["First Name", "Last Name", "MMERGE5"]


def header(kind: str, merge_fields: list[str] = MERGE_FIELDS) -> list[str]:
    return ["Email Address", *merge_fields, *COMMON, *EXTRA[kind]]


def csv_bytes(kind: str, rows: Iterable[dict], *, bom: bool = False,
              merge_fields: list[str] = MERGE_FIELDS) -> bytes:
    """One export file: every cell quoted, CRLF line ends; cells missing from a row are empty."""
    columns = header(kind, merge_fields)
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    return (b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode("utf-8")


def file_name(kind: str, suffix: str = "5eb1c0ffee") -> str:
    return f"{kind}_members_export_{suffix}.csv"


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def write_dir(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


def member(n: int, **cells: str) -> dict:
    """A plausible row for reader ``n``; keyword cells override it (``email=`` sets the
    ``Email Address`` column)."""
    row = {"Email Address": cells.pop("email", f"reader{n}@example.org"),
           "First Name": f"Reader {n}", "MEMBER_RATING": "3",
           "OPTIN_TIME": "2020-02-03 04:05:06", "OPTIN_IP": f"198.51.100.{n % 250}",
           "CONFIRM_TIME": "2020-02-03 04:07:00", "CONFIRM_IP": f"198.51.100.{n % 250}",
           "LAST_CHANGED": "2024-01-01 00:00:00", "LEID": str(900000 + n),
           "EUID": f"e{n:09x}"}
    row.update(cells)
    return row


def write_large_export(path: Path, rows: int) -> dict[str, int]:
    """A zip of ``rows`` readers: 85 % subscribed, 10 % unsubscribed, 5 % cleaned, streamed to
    disk file by file. Returns the rows per status."""
    shares = {"subscribed": 0.85, "unsubscribed": 0.10}
    counts = {kind: int(rows * share) for kind, share in shares.items()}
    counts["cleaned"] = rows - sum(counts.values())
    start = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for kind, count in counts.items():
            with archive.open(file_name(kind), "w") as raw, io.TextIOWrapper(
                    raw, encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
                columns = header(kind)
                writer.writerow(columns)
                for n in range(start, start + count):
                    row = member(n, UNSUB_TIME="2025-01-01 00:00:00", UNSUB_REASON="NORMAL",
                                 CLEAN_TIME="2025-01-02 00:00:00")
                    writer.writerow([row.get(column, "") for column in columns])
            start += count
    return counts
