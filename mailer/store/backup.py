"""Consistent copies of the SQLite database, taken while the web app and a send keep writing.

SQLite's online backup API copies the database page by page. Between two steps another writer
would normally make the backup start over, so the copy first opens a read transaction on its own
source connection: in WAL mode (mailer's) that pins one snapshot, the writers carry on appending to
the WAL, and the copy is exactly the database as it was when the backup began.

PostgreSQL has its own tool for this; :func:`pg_dump_command` says which command to run.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mailer.errors import ConfigError, StoreError

PAGES_PER_STEP = 1024  # 4 MiB with SQLite's default page size: a progress line's worth
BUSY_TIMEOUT_S = 30.0

Progress = Callable[[int, int], None]  # (pages copied, pages in all)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    pages: int
    size_bytes: int


def parse_database_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise ConfigError(f"bad setting MAILER_DATABASE_URL: cannot parse {url!r}") from None


def sqlite_file(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL; None for any other database."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise StoreError("the database is in memory (MAILER_DATABASE_URL): there is no file to copy")
    return Path(parsed.database)


def pg_dump_command(url: str, target: str = "PATH") -> str:
    """The pg_dump line that backs up the PostgreSQL database at ``url`` into ``target``.

    The password is left out: pg_dump reads it from PGPASSWORD or ~/.pgpass.
    """
    parsed = parse_database_url(url)
    libpq_url = URL.create("postgresql", username=parsed.username, host=parsed.host,
                           port=parsed.port, database=parsed.database, query=parsed.query)
    return (f"pg_dump --format=custom --file={shlex.quote(target)} "
            f"{shlex.quote(libpq_url.render_as_string(hide_password=False))}")


def timestamped_name(database: Path, label: str = "backup") -> str:
    """``subscribers.backup-20261129T083000Z.db`` for ``subscribers.db``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{database.stem}.{label}-{stamp}{database.suffix or '.db'}"


def resolve_target(database: Path, given: str | Path) -> Path:
    """Where the copy goes: ``given`` itself, or a dated file inside it when it is a folder.

    A trailing slash means a folder, as for cp and rsync: it is made when missing (its parent
    must exist), never taken as the copy's file name.
    """
    target = Path(given)
    if os.fspath(given).endswith(("/", os.sep)) and not target.is_dir():
        if not target.parent.is_dir():
            raise StoreError(f"cannot make folder {target}: folder {target.parent} does not exist")
        target.mkdir(mode=0o700)
    if target.is_dir():
        target = target / timestamped_name(database)
    if target.exists():
        raise StoreError(f"{target} exists already; a backup never overwrites a file")
    if not target.parent.is_dir():
        raise StoreError(f"cannot write {target}: folder {target.parent} does not exist")
    if target.resolve() == database.resolve():
        raise StoreError("the backup cannot be the database itself")
    return target


def backup_sqlite(database: Path, target: Path, *, on_progress: Progress | None = None,
                  pages_per_step: int = PAGES_PER_STEP) -> BackupResult:
    """Copy ``database`` to ``target`` (which must not exist) and check the copy.

    The copy is written beside ``target`` under a temporary name and renamed when complete and
    checked, so a failed backup leaves nothing behind. It is readable by its owner only: it holds
    every reader's address.
    """
    if not database.is_file():
        raise StoreError(f"no SQLite database at {database} (MAILER_DATABASE_URL)")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        pages = _copy_snapshot(database, partial, on_progress, pages_per_step)
        os.replace(partial, target)
    except sqlite3.Error as error:
        raise StoreError(f"backup of {database} failed, nothing was written: {error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(path=target, pages=pages, size_bytes=target.stat().st_size)


def _copy_snapshot(database: Path, partial: Path, on_progress: Progress | None,
                   pages_per_step: int) -> int:
    os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    source = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    copy = sqlite3.connect(partial, isolation_level=None)
    try:
        source.execute("BEGIN")  # a read transaction: one snapshot for every step below
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        copied = [0]

        def step_done(_status: int, remaining: int, total: int) -> None:
            copied[0] = total
            if on_progress is not None:
                on_progress(total - remaining, total)

        source.backup(copy, pages=pages_per_step, progress=step_done, sleep=0)
        source.execute("COMMIT")
        # One self-contained file: no -wal/-shm beside the copy.
        copy.execute("PRAGMA journal_mode=DELETE")
        verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"the copy fails SQLite's check: {verdict}")
        return copied[0]
    finally:
        copy.close()
        source.close()


def backup_before_upgrade(url: str, revision: str | None, head: str) -> Path | None:
    """A copy of the SQLite database beside it, before ``mailer db upgrade`` migrates it.

    None when there is nothing to keep: another database kind, no file yet, an empty schema, or a
    schema already at ``head``.
    """
    database = sqlite_file(url)
    if database is None or not database.is_file() or revision is None or revision == head:
        return None
    target = database.with_name(timestamped_name(database, f"before-upgrade-from-{revision}"))
    return backup_sqlite(database, resolve_target(database, target)).path
