"""The database engine, sessions and schema version checks.

SQLite runs in WAL mode with a busy timeout and foreign keys on, so the web app and a running
send can write at the same time. PostgreSQL URLs (``postgresql+psycopg://``) work unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlmodel import Session, create_engine

from mailer.errors import ConfigError, DatabaseTooNew, StoreError
from mailer.store.quick_read import MIGRATIONS_DIR, SQLITE_BUSY_TIMEOUT_MS, head_from_files

if TYPE_CHECKING:  # alembic costs a fifth of a second to import: only a migration needs it
    from alembic.config import Config

def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _create_private_file(database: str | None, query: Mapping[str, object]) -> None:
    """Create a new SQLite file with mode 0600 (less under a stricter umask) before SQLite does.

    SQLite creates it 0644, readable by every local user, and gives the -wal and -shm files the
    database file's mode; this holds every reader's address. An existing file keeps its mode
    (the operator's choice), and anything unusual (memory, a URI, a missing folder) is left to
    SQLite, which reports it.
    """
    if not database or database == ":memory:" or "uri" in query:
        return
    try:
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:  # exists already (also a race with another process), or cannot be made
        pass


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with mailer's connection settings; a bad URL is a ConfigError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"bad setting MAILER_DATABASE_URL: cannot parse {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        _create_private_file(parsed.database, parsed.query)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except Exception as error:  # missing driver and the like: the URL is the user's to fix
        raise ConfigError(f"bad setting MAILER_DATABASE_URL: {error}") from None
    # An executemany INSERT goes as multi-row INSERTs of up to 1,000 rows (psycopg's default is
    # one statement a row): the counters' statement-level triggers (migration 0016) then run
    # once per thousand rows, not once per row.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def _recorded_revision(engine: Engine) -> str | None:
    """The database's revision by one plain query, or None when it cannot tell (no table yet,
    an unusable file): then the full check below answers, with its clear errors."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as error:
        raise unusable_database(error, engine.url.render_as_string(hide_password=False)) or (
            StoreError(f"cannot open the database {_describe(engine.url)}: {_first_line(error.orig)}")
        ) from None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the database in place to ``revision`` (the newest by default).

    Returns the (before, after) revisions. Refuses a database migrated by a newer mailer.
    """
    from alembic import command

    before = current_revision(engine)
    check_not_newer(before)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                _upgrade_sqlite(connection, cfg, revision)
            else:
                with connection.begin():
                    cfg.attributes["connection"] = connection
                    command.upgrade(cfg, revision)
    except IntegrityError as error:  # rows the new schema forbids (say, duplicate addresses)
        raise StoreError(
            f"migration aborted, the database is unchanged: existing rows break a new rule "
            f"({_first_line(error.orig)}); fix them and run `mailer db upgrade` again"
        ) from None
    return before, current_revision(engine) or ""


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _upgrade_sqlite(connection: Connection, cfg: Config, revision: str) -> None:
    # SQLite rebuilds a table to alter it; dropping the old copy with foreign keys on would
    # cascade-delete the rows that point at it. The pragma only takes effect outside a
    # transaction, and the result is checked before the commit (SQLite's documented procedure).
    from alembic import command

    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        with connection.begin():
            # Explicit, so the DDL before the first row copy is inside the transaction too.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StoreError(
                    f"migration aborted: it would leave {len(broken)} broken references "
                    f"(first in table {broken[0][0]}); the database is unchanged"
                )
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def check_not_newer(revision: str | None) -> None:
    if revision is None:
        return
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        script.get_revision(revision)
    except Exception:
        raise DatabaseTooNew(
            f"the database is at schema revision {revision}, which this mailer does not know: "
            "it was migrated by a newer version. Upgrade mailer."
        ) from None


def ensure_schema(engine: Engine) -> None:
    """Create a fresh database's schema; refuse an outdated or a newer one with a clear error."""
    # The common case, a database at the head, is one query and no alembic import: a command
    # that only reads (stats, subscribers count) starts in half the time.
    recorded = _recorded_revision(engine)
    if recorded is not None and recorded == head_from_files():
        return
    revision = current_revision(engine)
    if revision is None:
        upgrade(engine)
        return
    check_not_newer(revision)
    if revision != head_revision():
        raise StoreError(
            f"the database schema is out of date (revision {revision}); run `mailer db upgrade`"
        )


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """The shared, schema-checked engine for ``url`` (one per process and URL)."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = make_engine(url)
        ensure_schema(engine)
        _ENGINES[url] = engine
    return engine


def get_existing_engine(url: str) -> Engine:
    """:func:`get_engine` for a database that must exist already: a missing SQLite file is a
    one-line StoreError naming it, and is not created. (A PostgreSQL database exists or its
    connection fails with its own line.)"""
    refuse_missing_database(url)
    return get_engine(url)


def refuse_missing_database(url: str) -> None:
    """A one-line StoreError when ``url`` names a SQLite file that is not there."""
    missing = missing_sqlite_file(url)
    if missing is not None:
        folder = "" if missing.parent.is_dir() else f": the folder {missing.parent} does not exist"
        raise StoreError(f"no database at {missing} (MAILER_DATABASE_URL){folder}; run mailer in "
                         "the folder that has it, or `mailer db upgrade` to create one")


def missing_sqlite_file(url: str) -> Path | None:
    """The absolute path of the SQLite file ``url`` names when there is no such file, else None
    (also for memory and ``file:`` URI databases, and other back-ends)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"bad setting MAILER_DATABASE_URL: cannot parse {url!r}") from None
    database = parsed.database
    if (parsed.get_backend_name() != "sqlite" or not database or database == ":memory:"
            or "uri" in parsed.query):
        return None
    path = Path(database).absolute()
    return None if path.exists() or path.is_symlink() else path


def reset_engines() -> None:
    """Dispose of cached engines (tests switch databases between cases)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


# --- a database that cannot be read ---------------------------------------------------------
# SQLite's own result codes (Python 3.11 names them) tell a damaged file from a busy one, so
# only real damage, or a file that cannot be opened, is reported as such.
_CORRUPT_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_UNOPENABLE_CODES = ("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR", "SQLITE_AUTH",
                     "SQLITE_READONLY")
_RESTORE_HINT = (
    "restore the latest backup (made by `mailer db backup`) in its place, "
    "or point MAILER_DATABASE_URL at a good copy"
)


def _describe(url: str | URL) -> str:
    """The file of a SQLite URL (absolute), or the URL without its password."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return str(Path(parsed.database or ":memory:").absolute())
    return parsed.render_as_string(hide_password=True)


def unusable_database(error: BaseException, url: str) -> StoreError | None:
    """A one-line StoreError for a damaged or unopenable SQLite file, else None.

    ``error`` is a SQLAlchemy DBAPIError or a bare sqlite3 error, raised at any point of a
    command: a damaged page may only be read long after the database was opened.
    """
    original = getattr(error, "orig", error)
    code = getattr(original, "sqlite_errorname", "") or ""
    if code.startswith("SQLITE_FULL") or getattr(original, "sqlstate", None) == "53100":
        return StoreError(f"disk full: the database {_describe(url)} cannot be written "
                          f"({_first_line(original)}); free some space, then run the same "
                          "command again")
    if not code:
        return None
    where = _describe(url)
    if code.startswith(_CORRUPT_CODES):
        return StoreError(
            f"the database file {where} is damaged ({_first_line(original)}): {_RESTORE_HINT}"
        )
    if code.startswith(_UNOPENABLE_CODES):
        return StoreError(
            f"cannot open the database file {where} ({_why_unopenable(where, original)}): it "
            f"must be a file this user can read and write, in a folder it can write; if it is "
            f"lost, restore the latest backup (made by `mailer db backup`)"
        )
    return None


def _why_unopenable(where: str, original: BaseException) -> str:
    path = Path(where)
    if path.is_dir():
        return "it is a folder"
    if not path.parent.is_dir():
        return f"the folder {path.parent} does not exist"
    return _first_line(original)


def check_integrity(engine: Engine) -> None:
    """Read every page of a SQLite database once; raise a one-line StoreError if one is bad.

    Opening a database reads only its first pages, so a long-running process (``mailer
    serve``) checks the whole file before it starts rather than failing on its first request.
    """
    if engine.dialect.name != "sqlite":
        return
    url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as connection:
            problems = connection.exec_driver_sql("PRAGMA quick_check(1)").scalar()
    except DBAPIError as error:
        raise unusable_database(error, url) or StoreError(
            f"cannot check the database file {_describe(url)}: {_first_line(error.orig)}"
        ) from None
    if problems != "ok":
        # "*** in database main ***\nPage 33: btreeInitPage() returns error code 11"
        detail = [line for line in str(problems).splitlines() if not line.startswith("***")]
        raise StoreError(
            f"the database file {_describe(url)} is damaged ({(detail or ['?'])[0]}): "
            f"{_RESTORE_HINT}"
        )


def session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
