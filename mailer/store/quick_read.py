"""One quick read of the database without SQLAlchemy (issue 23).

``mailer subscribers count`` reads a few counter rows; SQLAlchemy, SQLModel and the models take
most of such a command's time just to import. :func:`read_if_current` opens a SQLite file
read-only through :mod:`sqlite3`, or a PostgreSQL database (``postgresql+psycopg://``) through
psycopg in a read-only transaction, and runs the read when nothing needs saying: the database
is there and at this mailer's schema head. In every other case (another back-end or driver, no
file, another revision, any driver error: damaged, busy past the timeout, unreachable) it
answers None, and the caller takes the full path, which creates nothing for a read and says
what is wrong, as before.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The URLs read here: SQLAlchemy's plain SQLite file URLs, no query, nothing percent-encoded
_SQLITE_FILE_URL = re.compile(r"^sqlite(\+pysqlite)?:///(?P<path>[^?%]+)$")
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([\w.-]+|None)['\"]?\s*$",
                            re.M)

Result = TypeVar("Result")


@cache
def head_from_files() -> str | None:
    """The head revision read off the migration files' ``revision``/``down_revision`` lines:
    the one revision no other names as its parent. None when that is not one revision (a
    branch, an unreadable file): then only alembic's own answer counts."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        parents.add(found.get("down_revision", "None"))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


class QuickConnection(Protocol):
    """What a quick read needs of a connection: sqlite3's, or :class:`_PostgresReader`'s."""

    dialect: str

    def execute(self, sql: str, parameters: Mapping | Sequence = ...) -> Any: ...


def read_if_current(url: str, read: Callable[[Any], Result]) -> Result | None:
    """``read(connection)`` on the database ``url`` names, read-only, when it is there and at
    the schema head: a SQLite file through sqlite3, PostgreSQL through psycopg (parameters
    written ``:name`` for both); otherwise None (the caller's full path tells why)."""
    if _POSTGRES_URL.match(url):
        return _read_postgres(url, read)
    path = _sqlite_file(url)
    if path is None:
        return None
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True,
                                     timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error:
        return None
    try:
        with connection:  # one read transaction: the revision and the figures agree
            if _revision(connection) != head_from_files():
                return None
            return read(_Dialected(connection, "sqlite"))
    except sqlite3.Error:
        return None
    finally:
        connection.close()


class _Dialected:
    """sqlite3's connection, saying which SQL dialect it speaks."""

    def __init__(self, connection: sqlite3.Connection, dialect: str) -> None:
        self._connection, self.dialect = connection, dialect

    def execute(self, sql: str, parameters: Mapping | Sequence = ()) -> Any:
        return self._connection.execute(sql, parameters)


# psycopg's URLs as SQLAlchemy writes them for it: the rest is libpq's own URI
_POSTGRES_URL = re.compile(r"^postgresql\+psycopg://")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
POSTGRES_CONNECT_TIMEOUT_S = 5


class _PostgresReader:
    """A psycopg connection that takes the ``:name`` parameters sqlite3 and SQLAlchemy's
    text() take (the SQL texts of the figures are shared; none holds a literal % or ::)."""

    dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Mapping | Sequence = ()) -> Any:
        return self._connection.execute(_NAMED.sub(r"%(\1)s", sql), parameters or None)


def _read_postgres(url: str, read: Callable[[Any], Result]) -> Result | None:
    try:  # psycopg alone is a tenth of a second; SQLAlchemy and the models are not
        import psycopg
    except ImportError:
        return None
    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1),
                             connect_timeout=POSTGRES_CONNECT_TIMEOUT_S) as connection:
            connection.read_only = True
            with connection.transaction():  # one snapshot: the revision and the figures agree
                cursor = connection.execute(
                    "SELECT version_num FROM alembic_version")
                rows = cursor.fetchall()
                if len(rows) != 1 or rows[0][0] != head_from_files():
                    return None
                return read(_PostgresReader(connection))
    except psycopg.Error:
        return None


def _sqlite_file(url: str) -> Path | None:
    match = _SQLITE_FILE_URL.match(url)
    if match is None or match["path"] == ":memory:":
        return None
    path = Path(match["path"]).absolute()
    return path if path.is_file() else None


def _revision(connection: sqlite3.Connection) -> str | None:
    rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return rows[0][0] if len(rows) == 1 else None
