"""Subscribers in files: the CSV import (streamed, chunked, resumable) and the export.

Re-exported by :mod:`mailer.store.subscribers`; the Mailchimp import reuses the bulk path.
"""

from __future__ import annotations

import csv
import json
from contextlib import closing
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from mailer.addresses import normalise_address, shorten
from mailer.audience_files import bounded_lines, data_rows, scan_lines
from mailer.domain import SubscriberStatus, address_key, utcnow
from mailer.errors import InvalidAddress, SubscriberError
from mailer.read_ahead import read_ahead
from mailer.store.forgotten import forget_keys, remember_forgotten, secret_or_configured
from mailer.store.import_seen import SeenAddresses
from mailer.store.models import ForgottenAddress, Subscriber, SubscriberChange, table_of
from mailer.subscription_states import Event, from_states
from mailer.tokens import FORGET_HASH_PREFIX

IMPORT_CHUNK_ROWS = 2_000
# A file longer than this is read in a process of its own (mailer.read_ahead); below it, the
# fork would cost more than the overlap wins
READ_AHEAD_LINES = 20_000
# Rows per INSERT … VALUES … RETURNING: 11 columns × 500 stays far under the parameter caps of
# SQLite (32,766) and PostgreSQL (65,535).
_INSERT_BATCH = 500
# Columns `export` writes that an import of that file must not copy into attrs.
_EXPORT_ONLY_COLUMNS = frozenset({"id", "status", "created_at", "updated_at", "confirmed_at",
                                  "source"})
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# json.dumps(attrs, ensure_ascii=False, sort_keys=True), without building an encoder per row
_ATTRS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_QUOTED = json.encoder.encode_basestring  # a str as JSON (ensure_ascii=False), in C


# -- export ------------------------------------------------------------------------------------


def export_subscribers(session: Session, *,
                       status: SubscriberStatus | None = None) -> Iterator[dict]:
    """Every subscriber (or those in ``status``) as a dict, streamed page by page by id."""
    last_id = 0
    while True:
        query = select(Subscriber).where(col(Subscriber.id) > last_id).order_by(col(Subscriber.id))
        if status is not None:
            query = query.where(col(Subscriber.status) == status)
        page = session.execute(query.limit(1_000)).scalars().all()
        if not page:
            return
        for subscriber in page:
            yield _export_row(subscriber)
        last_id = page[-1].id
        session.expunge_all()  # keep memory flat on large lists


def _export_row(subscriber: Subscriber) -> dict:
    return {
        "email": subscriber.email,
        "status": str(subscriber.status),
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "source": subscriber.source,
        "attrs": json.loads(subscriber.attrs) if subscriber.attrs else {},
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def spreadsheet_safe(value: str) -> str:
    """Keep a CSV cell from being run as a formula when someone opens the file in a sheet."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


# -- import ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    added: int = 0
    confirmed: int = 0  # ``confirmed``: already here and pending, now active
    existing: int = 0  # already subscribers: left as they are
    duplicates: int = 0  # the same address again further down the file
    forgotten: list[tuple[int, str]] = field(default_factory=list)  # (line, address) skipped
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    @property
    def rows(self) -> int:
        return self.added + self.confirmed + self.existing + self.duplicates + len(
            self.forgotten) + len(self.invalid)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows, "added": self.added, "confirmed": self.confirmed,
            "existing": self.existing,
            "duplicates": self.duplicates,
            "forgotten": [{"line": line, "email": email} for line, email in self.forgotten],
            "invalid": [{"line": line, "reason": reason} for line, reason in self.invalid],
        }


@dataclass(frozen=True)
class _Candidate:
    line: int
    email: str
    attrs: str | None


@dataclass(frozen=True)
class _ImportRun:
    """What every row of one import gets: its status, its source, the file it came from."""

    confirmed: bool
    source: str
    secret: str  # the key of the forgotten-address hashes
    file_name: str

    @property
    def status(self) -> SubscriberStatus:
        return SubscriberStatus.ACTIVE if self.confirmed else SubscriberStatus.PENDING


def import_csv(engine: Engine, path: Path, *, confirmed: bool = False, source: str = "import",
               secret: str | None = None,
               on_total: Callable[[int], None] | None = None,
               on_rows: Callable[[int], None] | None = None) -> ImportReport:
    """Add the addresses of a CSV file with an ``email`` column; other columns go to attrs.

    Streams the file and commits chunk by chunk, so a large file never sits in memory and an
    interrupted import is simply run again: rows already there are counted, never changed,
    except that ``confirmed`` confirms a pending one (the rule of ``add --confirmed``; an
    unsubscribed, bounced or complained address stays as it is).
    A bad row is reported with its line number and skipped. ``on_total`` hears the number of
    data lines before the work starts (from the pass that refuses over-long lines), ``on_rows``
    how many more lines were read after each chunk: progress for the caller to show.
    """
    path = Path(path)
    run = _ImportRun(confirmed, source, secret_or_configured(secret), path.name)
    report = ImportReport()
    try:
        with path.open("rb") as raw:
            lines = scan_lines(path.name, raw)  # a line too long to read stops it before any write
    except OSError as error:
        raise SubscriberError(f"cannot read {path}: {error.strerror or error}") from None
    if on_total is not None:
        on_total(max(0, lines - 1))  # the header is not a row
    # a large file is read in a second process while this one writes (mailer.read_ahead):
    # the two halves of an import's time overlap on a second core
    chunks = (read_ahead(lambda: _read_chunks(path)) if lines > READ_AHEAD_LINES
              else _read_chunks(path))
    # closing: an error or Ctrl-C here stops the reading process now, not when the
    # traceback that holds this frame is gone
    with closing(chunks), Session(engine, expire_on_commit=False) as session:
        told = 0
        for chunk in chunks:
            report.invalid.extend(chunk.invalid)
            report.duplicates += chunk.duplicates
            _import_chunk(session, chunk.candidates, report, run)
            told = _tell_progress(on_rows, chunk.line, told)
    return report


@dataclass(frozen=True)
class _ReadChunk:
    """What reading one chunk of the file found: the rows to import (first of their address
    in the file), the unreadable or invalid ones, the repeats, and the line reached."""

    candidates: list[_Candidate]
    invalid: list[tuple[int, str]]
    duplicates: int
    line: int


def _read_chunks(path: Path) -> Generator[_ReadChunk, None, None]:
    """The file read chunk by chunk; nothing here touches the database (it may run in a
    process of its own). The last chunk carries the rows after the last full one."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig", errors="replace")
    except OSError as error:
        raise SubscriberError(f"cannot read {path}: {error.strerror or error}") from None
    with handle, SeenAddresses() as seen:
        reader = csv.reader(bounded_lines(path.name, handle))
        email_index, header = _read_header(reader, path)
        found = ImportReport()  # what reading found so far; each chunk carries what is new
        told_invalid = told_duplicates = 0
        for chunk in _candidate_chunks(_rows(reader, found), email_index, header, found):
            first = _first_in_file(chunk, seen, found, path.name)
            yield _ReadChunk(first, found.invalid[told_invalid:],
                             found.duplicates - told_duplicates, reader.line_num)
            told_invalid, told_duplicates = len(found.invalid), found.duplicates
        yield _ReadChunk([], found.invalid[told_invalid:], found.duplicates - told_duplicates,
                         reader.line_num)


def _tell_progress(on_rows: Callable[[int], None] | None, line: int, told: int) -> int:
    """Tell ``on_rows`` the data lines read since ``told`` (the header is not a row)."""
    if on_rows is not None and line - 1 > told:
        on_rows(line - 1 - told)
    return max(told, line - 1)


def _read_header(reader: Iterator[list[str]], path: Path) -> tuple[int, list[str]]:
    try:
        header = next(reader)
    except StopIteration:
        raise SubscriberError(f"{path.name} is empty: expected a header row with an "
                              "'email' column") from None
    except csv.Error as error:
        raise SubscriberError(f"{path.name}: cannot read the header row: {error}") from None
    names = [name.strip().lower() for name in header]
    if "email" not in names:
        raise SubscriberError(f"{path.name} has no 'email' column in its header row "
                              f"(found: {', '.join(shorten(n, 30) for n in names) or 'nothing'})")
    return names.index("email"), names


def _rows(reader, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each data row; unreadable rows go to the report."""
    for line, cells in data_rows(reader):  # the same reading as the Mailchimp import's
        if isinstance(cells, str):
            report.invalid.append((line, cells))
        else:
            yield line, cells


def _candidate_chunks(rows: Iterator[tuple[int, list[str]]], email_index: int,
                     header: list[str], report: ImportReport) -> Iterator[list[_Candidate]]:
    """The rows with a valid address, IMPORT_CHUNK_ROWS at a time: no list of the whole file."""
    chunk: list[_Candidate] = []
    for line, cells in rows:
        candidate = _candidate(line, cells, email_index, header, report)
        if candidate is not None:
            chunk.append(candidate)
            if len(chunk) >= IMPORT_CHUNK_ROWS:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _candidate(line: int, cells: list[str], email_index: int, header: list[str],
               report: ImportReport) -> _Candidate | None:
    raw = cells[email_index] if email_index < len(cells) else ""
    if raw.startswith("'") and raw[1:].startswith(_FORMULA_PREFIXES):
        raw = raw[1:]  # undo spreadsheet_safe() from our own export
    try:
        email = normalise_address(raw)
    except InvalidAddress as error:
        report.invalid.append((line, str(error)))
        return None
    return _Candidate(line, email, _attrs(cells, header, email_index))


def _first_in_file(chunk: list[_Candidate], seen: SeenAddresses, report: ImportReport,
                   file_name: str) -> list[_Candidate]:
    """The candidates whose address did not come earlier in the file (this chunk or one
    before, asked of ``seen``, never a set of the whole file); later ones count as repeated."""
    keys = [address_key(candidate.email) for candidate in chunk]
    earlier = seen.earlier(keys)
    first: dict[str, _Candidate] = {}
    for key, candidate in zip(keys, chunk, strict=True):
        if key in earlier or key in first:
            report.duplicates += 1
        else:
            first[key] = candidate
    seen.add((key, file_name, candidate.line, None) for key, candidate in first.items())
    return list(first.values())


def _attrs(cells: list[str], header: list[str], email_index: int) -> str | None:
    attrs: dict[str, str] = {}
    for index, value in enumerate(cells):
        if index == email_index or not value:
            continue
        name = header[index] if index < len(header) else f"column_{index + 1}"
        if name == "attrs":
            attrs.update(_json_object(value))
        elif name and name not in _EXPORT_ONLY_COLUMNS:
            attrs[name] = value
    return _attrs_json(attrs) if attrs else None


def _attrs_json(attrs: dict) -> str:
    """:data:`_ATTRS_JSON` of ``attrs``; text values (a CSV's cells) are written out directly,
    the same characters as the encoder's, at a third of its cost over a million rows."""
    if not all(type(value) is str for value in attrs.values()):
        return _ATTRS_JSON(attrs)
    return "{" + ", ".join(f"{_QUOTED(name)}: {_QUOTED(value)}"
                           for name, value in sorted(attrs.items())) + "}"


def _json_object(value: str) -> dict:
    try:
        parsed = json.loads(value)
    except ValueError:
        return {"attrs": value}
    return {str(k): v for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def _import_chunk(session: Session, chunk: list[_Candidate], report: ImportReport,
                  run: _ImportRun) -> None:
    fresh = _drop_forgotten(session, chunk, report, secret=run.secret)
    if not fresh:
        return
    now = utcnow()
    status, confirmed_at, source = run.status.value, now if run.confirmed else None, run.source
    rows = [{"email": c.email, "status": status, "created_at": now, "updated_at": now,
             "confirmed_at": confirmed_at, "source": source, "attrs": c.attrs}
            for c in fresh]
    # ON CONFLICT DO NOTHING (on either unique index: the address or its lower case): an
    # address already there, or arriving meanwhile from the web form, counts as "existing".
    inserted = insert_rows(session, table_of(Subscriber), rows, ignore_conflicts=True,
                           returning=("id", "email"))
    lines = {c.email: c.line for c in fresh}
    if inserted:
        # json.dumps of {"file", "line"}, written out: a million calls cost seconds
        file_json = json.dumps(run.file_name)
        insert_rows(session, table_of(SubscriberChange), [
            {"subscriber_id": subscriber_id, "at": now, "from_status": None,
             "to_status": status, "source": source,
             "detail": f'{{"file": {file_json}, "line": {lines[email]}}}'}
            for subscriber_id, email in inserted
        ])
    new = {email for _id, email in inserted}
    confirmed = (_confirm_pending(session, [c for c in fresh if c.email not in new], run, now)
                 if run.confirmed else 0)
    session.commit()
    report.added += len(inserted)
    report.confirmed += confirmed
    report.existing += len(fresh) - len(inserted) - confirmed


def insert_rows(session: Session, table: Table, rows: list[dict], *,
                ignore_conflicts: bool = False, returning: tuple[str, ...] = ()) -> list[tuple]:
    """INSERT ``rows`` (dicts with the same keys) through the driver in the session's
    transaction; the ``returning`` columns of the rows inserted.

    SQLAlchemy's per-row parameter handling cost more than the database's own work on a large
    import (cProfile, 100,000 rows); this binds each column's value the way its type does, with
    one conversion per distinct value, and sends multi-row VALUES, ``_INSERT_BATCH`` rows a
    statement. ON CONFLICT DO NOTHING skips a row that breaks any unique index.
    """
    if not rows:
        return []
    connection = session.connection()
    dialect = connection.dialect
    columns = list(rows[0])
    # column by column: each converted as its type binds it, then zipped into rows once
    values = list(zip(*(_bound([row[name] for row in rows],
                               table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
                         for name in columns), strict=True))
    quote = dialect.identifier_preparer.quote
    head = (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
            f"({', '.join(quote(name) for name in columns)}) VALUES ")
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    width = len(columns)
    # The driver's cursor on the session's connection: the same transaction, no result
    # processing (a driver error still rolls the session back when it ends).
    cursor: Any = _psycopg_raw_cursor(connection.connection.driver_connection)
    if cursor is not None:
        def rows_of(count: int) -> str:
            return ", ".join("(" + ", ".join(f"${row * width + column + 1}"
                                             for column in range(width)) + ")"
                             for row in range(count))
    else:  # sqlite3, or another PostgreSQL driver: the driver's own parameter style
        cursor = connection.connection.cursor()
        mark = "?" if dialect.paramstyle == "qmark" else "%s"

        def rows_of(count: int) -> str:
            return ", ".join(["(" + ", ".join([mark] * width) + ")"] * count)
    try:
        # Multi-row statements even with nothing returned. PostgreSQL: the counters'
        # statement-level triggers (migration 0016) run once per batch, not once per row.
        # SQLite: its row triggers (0014) cost a third as much inside one statement as over
        # executemany's statement a row (200,000 history rows: 0.7 s against 2.3 s of
        # sqlite3's time, cProfile; the whole import 9.5 → 6.2 s)
        if returning:
            tail += f" RETURNING {', '.join(quote(name) for name in returning)}"
        found: list[tuple] = []
        for start in range(0, len(values), _INSERT_BATCH):
            batch = values[start:start + _INSERT_BATCH]
            cursor.execute(head + rows_of(len(batch)) + tail,
                           [value for row in batch for value in row])
            if returning:
                found.extend(map(tuple, cursor.fetchall()))
        return found
    finally:
        cursor.close()


def _psycopg_raw_cursor(driver: object) -> Any:
    """psycopg's RawCursor on ``driver`` when it is a psycopg 3 connection, else None. It takes
    PostgreSQL's own $1, $2 … as they are: psycopg's usual cursor parses every %s of a
    statement in Python, and one of 500 rows × 11 columns is too long for its cache (200,000
    rows: 13.8 s of a 29 s import, cProfile)."""
    if type(driver).__module__.split(".", 1)[0] != "psycopg":
        return None
    from psycopg import Connection, RawCursor

    return RawCursor(driver) if isinstance(driver, Connection) else None


def _bound(column: list, processor: Callable | None) -> list:
    """One column's values converted as its type binds them (SQLite: a datetime to text); a
    chunk repeats the same times, so each distinct value is converted once."""
    if processor is None:
        return column
    converted = {value: None if value is None else processor(value) for value in set(column)}
    return list(map(converted.__getitem__, column))


def _confirm_pending(session: Session, already: list[_Candidate], run: _ImportRun,
                     now: datetime) -> int:
    """Confirm the addresses of ``already`` (here before this chunk) that are pending (those the
    workflow's CONFIRM may take to active, mailer.subscription_states); how many.

    In bulk, one update and one insert per chunk, so a re-run over a large file stays quick."""
    if not already:
        return 0
    table = table_of(Subscriber)
    by_email = {c.email.lower(): c for c in already}
    confirmable = from_states(SubscriberStatus.ACTIVE, Event.CONFIRM, source=run.source)
    pending = session.execute(select(table.c.id, table.c.email, table.c.status).where(
        func.lower(table.c.email).in_(list(by_email)),
        table.c.status.in_([status.value for status in confirmable]))).all()
    if not pending:
        return 0
    session.execute(update(table).where(table.c.id.in_([i for i, _e, _s in pending])).values(
        status=SubscriberStatus.ACTIVE.value, confirmed_at=now, updated_at=now,
        confirm_nonce=None))  # an old confirmation link must not act on them again
    session.execute(insert(table_of(SubscriberChange)), [
        {"subscriber_id": subscriber_id, "at": now,
         "from_status": status,
         "to_status": SubscriberStatus.ACTIVE.value, "source": run.source,
         "detail": json.dumps({"file": run.file_name, "line": by_email[email.lower()].line,
                               "confirmed_by": "operator"})}
        for subscriber_id, email, status in pending])
    return len(pending)


def _drop_forgotten(session: Session, chunk: list[_Candidate], report: ImportReport, *,
                    secret: str) -> list[_Candidate]:
    keys = session.info.get("forget_keys")  # one look-up per import, not per chunk
    if keys is None:
        keys = session.info["forget_keys"] = forget_keys(session, secret)
    hashes = {h: c for c in chunk for h in keys.hashes(c.email)}
    if not hashes:
        return chunk
    found = set(session.execute(select(col(ForgottenAddress.address_hash)).where(
        col(ForgottenAddress.address_hash).in_(list(hashes)))).scalars())
    forgotten = {hashes[h].line: hashes[h] for h in found}
    for line in sorted(forgotten):
        report.forgotten.append((line, forgotten[line].email))
    old_style = {hashes[h].line: hashes[h] for h in found if not h.startswith(FORGET_HASH_PREFIX)}
    if old_style:
        _upgrade_forget_hashes(session, list(old_style.values()), secret)
    return [c for c in chunk if c.line not in forgotten]


def _upgrade_forget_hashes(session: Session, candidates: list[_Candidate], secret: str) -> None:
    # Met again, so they can be rehashed with the pepper: then a key rotation cannot free them.
    keys = session.info["forget_keys"] = forget_keys(session, secret, create=True)
    for candidate in candidates:
        remember_forgotten(session, candidate.email, keys)
    session.commit()
