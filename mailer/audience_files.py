"""Reading subscriber files: a Mailchimp audience export (a zip or its unpacked folder).

Pure: no database, no network. It turns files into typed records and says which rows it could
not read; what the records mean for mailer's subscribers is decided in
``mailer.store.mailchimp_import``. Every file is streamed row by row, so an export of any size
is read in bounded memory.

A Mailchimp export holds one CSV per member status, named ``<status>_members_export_*.csv``:
UTF-8 (older exports start with a BOM), quoted, CRLF line ends, times ``YYYY-MM-DD HH:MM:SS`` in
UTC and often empty. The audience's own merge fields (``First Name``, ``MMERGE5``, ...) sit
between ``Email Address`` and the fixed columns.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import IO

from mailer.errors import SubscriberError

EMAIL_COLUMN = "Email Address"
# Columns Mailchimp writes for every audience; any other column is one of its merge fields.
FIXED_COLUMNS = frozenset({
    EMAIL_COLUMN, "MEMBER_RATING", "OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP",
    "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC", "REGION", "LAST_CHANGED",
    "LEID", "EUID", "NOTES", "TAGS",
    "UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
    "UNSUB_REASON_OTHER", "CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID",
})
_EXPORT_FILE = re.compile(r"^(subscribed|unsubscribed|cleaned|nonsubscribed)_members_export_"
                          r"[^/\\]*\.csv$", re.IGNORECASE)
# Bounds for files built to exhaust the machine (issue 19, item 16). A real export is a few CSVs
# of some hundred bytes a reader, deflated 5 to 15 times; a zip bomb is thousands of times.
MAX_EXPORT_MEMBERS = 1000  # entries in the zip, listed or not
MAX_EXPORT_BYTES = 4 * 1024**3  # the export CSVs uncompressed, in total
MAX_COMPRESSION_RATIO = 100  # per CSV, once it is over RATIO_CHECK_FROM bytes
RATIO_CHECK_FROM = 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024  # one CSV line (csv's own field cap is 128 KiB)
_SCAN_CHUNK = 1 << 20
_TIME_FORMAT_HINT = "YYYY-MM-DD HH:MM:SS"
_TIME_SHAPE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.ASCII)


class MemberKind(StrEnum):
    """The Mailchimp status a file holds, most restrictive first."""

    CLEANED = "cleaned"  # removed by Mailchimp after hard bounces
    UNSUBSCRIBED = "unsubscribed"
    SUBSCRIBED = "subscribed"
    NONSUBSCRIBED = "nonsubscribed"  # transactional contacts who never opted in

    @property
    def order(self) -> int:
        return list(MemberKind).index(self)


@dataclass(frozen=True, slots=True)
class MailchimpMember:
    """One row of an export, typed. ``email`` is as written; the store normalises it."""

    file: str
    line: int
    kind: MemberKind
    email: str
    merge_fields: dict[str, str]
    optin_time: datetime | None = None
    optin_ip: str | None = None
    confirm_time: datetime | None = None
    confirm_ip: str | None = None
    leid: str | None = None
    euid: str | None = None
    tags: str | None = None
    # when and why they left: UNSUB_* for unsubscribed, CLEAN_* for cleaned
    left_at: datetime | None = None
    reason: str | None = None
    reason_other: str | None = None
    campaign_title: str | None = None
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    file: str
    line: int
    reason: str


@dataclass(frozen=True)
class ExportFile:
    name: str
    kind: MemberKind
    open_binary: Callable[[], IO[bytes]]

    def open_text(self) -> IO[str]:
        # utf-8-sig drops a BOM; newline="" lets csv see CRLF and quoted line breaks itself.
        return io.TextIOWrapper(self.open_binary(), encoding="utf-8-sig", errors="replace",
                                newline="")


@dataclass
class MailchimpExport(AbstractContextManager):
    """The CSV files of one export, most restrictive status first; close() releases a zip."""

    source: Path
    files: list[ExportFile]
    ignored: list[str] = field(default_factory=list)  # other files in the export
    _zip: zipfile.ZipFile | None = None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_headers(self) -> None:
        """Raise SubscriberError unless every file has a readable header with the email column,
        so a broken export stops before anything is written."""
        for export_file in self.files:
            with export_file.open_text() as handle:
                header_of(export_file.name, csv.reader(bounded_lines(export_file.name, handle)))

    def count_rows(self) -> int:
        """How many records there are: exactly the rows :meth:`members` will yield, so progress
        ends at "N of N" even when a cell (NOTES) holds line breaks. Reading every line once,
        it raises SubscriberError on a line over MAX_LINE_BYTES, before any import."""
        total = 0
        for export_file in self.files:
            with export_file.open_text() as handle:
                reader = csv.reader(bounded_lines(export_file.name, handle))
                header_of(export_file.name, reader)
                total += sum(1 for _row in data_rows(reader))
        return total

    def members(self, export_file: ExportFile) -> Iterator[MailchimpMember | BadRow]:
        """Every data row of one file as a record, or a BadRow saying why it could not be read."""
        with export_file.open_text() as handle:
            reader = csv.reader(bounded_lines(export_file.name, handle))
            header = header_of(export_file.name, reader)
            for line, cells in data_rows(reader):
                if isinstance(cells, str):
                    yield BadRow(export_file.name, line, cells)
                    continue
                yield member_from_cells(export_file, line, header, cells)


def open_mailchimp_export(path: Path) -> MailchimpExport:
    """The export at ``path``: Mailchimp's zip as downloaded, or the folder it was unpacked to."""
    path = Path(path)
    if path.is_dir():
        return _export_from_dir(path)
    if not path.exists():
        raise SubscriberError(f"{path} does not exist: give the export's .zip or its folder")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise SubscriberError(f"{path} is not a Mailchimp export zip: {error}") from None
    files, ignored = [], []
    try:
        check_zip_bounds(path, archive)
    except SubscriberError:
        archive.close()
        raise
    for info in archive.infolist():
        if info.is_dir():
            continue
        kind = kind_of(info.filename)
        if kind is None:
            ignored.append(info.filename)
            continue
        files.append(ExportFile(Path(info.filename).name, kind,
                                partial(_CappedReader.open, path, archive, info)))
    return _checked(MailchimpExport(path, _by_restrictiveness(files), ignored, archive))


def check_zip_bounds(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse a zip bomb from its directory, before a byte is inflated."""
    infos = archive.infolist()
    if len(infos) > MAX_EXPORT_MEMBERS:
        raise SubscriberError(f"{path} holds {len(infos):,} files, over {MAX_EXPORT_MEMBERS:,}: "
                              "not a Mailchimp export")
    total = 0
    for info in infos:
        if info.is_dir() or kind_of(info.filename) is None:
            continue  # never read
        if (info.file_size > RATIO_CHECK_FROM
                and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)):
            raise SubscriberError(
                f"{path}: {info.filename} inflates {info.file_size // max(info.compress_size, 1):,}"
                f" times (over {MAX_COMPRESSION_RATIO}): a zip bomb, not a Mailchimp export")
        total += info.file_size
    if total > MAX_EXPORT_BYTES:
        raise SubscriberError(f"{path}: its CSVs are {total / 1024**3:.1f} GiB uncompressed, over "
                              f"{MAX_EXPORT_BYTES / 1024**3:.1f} GiB")


class _CappedReader(io.RawIOBase):
    """A zip member that may not inflate past the size its header declares: headers can lie."""

    def __init__(self, path: Path, info: zipfile.ZipInfo, stream: IO[bytes]) -> None:
        self.where = f"{path}: {info.filename}"
        self.left = info.file_size
        self.stream = stream

    @classmethod
    def open(cls, path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
        return io.BufferedReader(cls(path, info, archive.open(info)))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.stream.read(min(len(buffer), self.left + 1))
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # its CRC or size did not hold
            raise SubscriberError(f"{self.where}: the zip is damaged ({error})") from None
        if len(data) > self.left:
            raise SubscriberError(f"{self.where} inflates past the size its zip header gives")
        self.left -= len(data)
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def scan_lines(file_name: str, handle: IO[bytes], limit: int | None = None) -> int:
    """Count the lines of a file in bounded memory; raise SubscriberError on one over ``limit``
    bytes, naming the file and the line.

    Read in blocks of at most ``limit`` bytes, no line ending inside a block can be too long, so
    only the line that runs on from the blocks before needs measuring: count, find and rfind run
    at memory speed, with no list of the block's lines (a million-line file takes a tenth of a
    second).
    """
    limit = limit or MAX_LINE_BYTES
    block = min(_SCAN_CHUNK, limit)
    lines, current = 0, 0  # current: bytes of the line not yet ended
    for chunk in iter(lambda: handle.read(block), b""):
        first_end = chunk.find(b"\n")
        if first_end < 0:
            current += len(chunk)
        else:
            current += first_end  # the line that began in an earlier block ends here
        if current > limit:
            raise _line_too_long(file_name, lines + 1, limit)
        if first_end >= 0:
            lines += chunk.count(b"\n")
            current = len(chunk) - chunk.rfind(b"\n") - 1
    return lines + (1 if current else 0)


def bounded_lines(file_name: str, handle: IO[str], limit: int | None = None) -> Iterator[str]:
    """The lines of a text file for ``csv.reader``, none read past ``limit`` characters."""
    limit = limit or MAX_LINE_BYTES
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise _line_too_long(file_name, number, limit)
        yield line


def _line_too_long(file_name: str, line: int, limit: int) -> SubscriberError:
    return SubscriberError(f"{file_name}: line {line:,} is longer than {limit // 1024:,} KiB: "
                           "not a subscriber CSV (nothing was imported)")


def _export_from_dir(path: Path) -> MailchimpExport:
    files, ignored = [], []
    for child in sorted(path.iterdir()):
        kind = kind_of(child.name) if child.is_file() else None
        if kind is None:
            ignored.append(child.name)
            continue
        files.append(ExportFile(child.name, kind, _binary_opener(child)))
    return _checked(MailchimpExport(path, _by_restrictiveness(files), ignored))


def _checked(export: MailchimpExport) -> MailchimpExport:
    if not export.files:
        export.close()
        raise SubscriberError(f"{export.source} holds no Mailchimp export files "
                              "(subscribed_members_export_*.csv and the like)")
    return export


def _by_restrictiveness(files: list[ExportFile]) -> list[ExportFile]:
    return sorted(files, key=lambda f: (f.kind.order, f.name))


def _binary_opener(path: Path) -> Callable[[], IO[bytes]]:
    def open_binary() -> IO[bytes]:
        return path.open("rb")
    return open_binary


def kind_of(file_name: str) -> MemberKind | None:
    match = _EXPORT_FILE.match(Path(file_name.replace("\\", "/")).name)
    return MemberKind(match.group(1).lower()) if match else None


def header_of(file_name: str, reader: Iterator[list[str]]) -> list[str]:
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise SubscriberError(f"{file_name} is empty: expected a header row") from None
    except csv.Error as error:
        raise SubscriberError(f"{file_name}: cannot read the header row: {error}") from None
    if EMAIL_COLUMN not in header:
        raise SubscriberError(f"{file_name} has no '{EMAIL_COLUMN}' column in its header row")
    return header


def data_rows(reader) -> Iterator[tuple[int, list[str] | str]]:
    """(line, cells) for each non-blank data row, or (line, reason) for one csv cannot read.

    The line is where the row starts: a quoted cell may span several lines.
    """
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield start, f"unreadable CSV row: {error}"
            continue
        if any(cell.strip() for cell in cells):
            yield start, cells


def member_from_cells(export_file: ExportFile, line: int, header: list[str],
                      cells: list[str]) -> MailchimpMember | BadRow:
    # the cells with a value, stripped: a short row leaves its last columns out (empty), and
    # a column's value is row.get(name), None when empty (a million rows: one pass, no calls)
    row = {name: value for name, raw in zip(header, cells, strict=False)
           if (value := raw.strip())}
    cell = row.get

    times: dict[str, datetime | None] = {}
    for name in ("OPTIN_TIME", "CONFIRM_TIME", "UNSUB_TIME", "CLEAN_TIME"):
        try:
            times[name] = parse_time(cell(name, ""))
        except ValueError as error:
            return BadRow(export_file.name, line, f"{name}: {error}")
    left = "CLEAN" if export_file.kind is MemberKind.CLEANED else "UNSUB"
    return MailchimpMember(
        file=export_file.name, line=line, kind=export_file.kind, email=cell(EMAIL_COLUMN, ""),
        merge_fields=merge_fields(row),
        optin_time=times["OPTIN_TIME"], optin_ip=cell("OPTIN_IP"),
        confirm_time=times["CONFIRM_TIME"], confirm_ip=cell("CONFIRM_IP"),
        leid=cell("LEID"), euid=cell("EUID"), tags=cell("TAGS"),
        left_at=times[f"{left}_TIME"],
        reason=cell("UNSUB_REASON"), reason_other=cell("UNSUB_REASON_OTHER"),
        campaign_title=cell(f"{left}_CAMPAIGN_TITLE"), campaign_id=cell(f"{left}_CAMPAIGN_ID"),
    )


def merge_fields(row: dict[str, str]) -> dict[str, str]:
    """The audience's own columns (First Name, MMERGE5, ...) of a row's cells that have a
    value (stripped, as member_from_cells keeps them)."""
    return {name: value for name, value in row.items() if name and name not in FIXED_COLUMNS}


def parse_time(value: str) -> datetime | None:
    """Mailchimp's ``YYYY-MM-DD HH:MM:SS`` (UTC) as an aware datetime; None when empty."""
    if not value:
        return None
    # fromisoformat is C and ten times strptime's speed; the shape check keeps it to this one
    # format (it would also take a date alone, a "T" or an offset).
    if _TIME_SHAPE.fullmatch(value):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError(f"{value[:40]!r} is not a time ({_TIME_FORMAT_HINT})")
