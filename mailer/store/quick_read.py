"""One quick read of a SQLite database with the standard library alone (issue 23 §B).

``mailer subscribers count`` reads a few counter rows; SQLAlchemy, SQLModel and the models take
most of such a command's time just to import. :func:`read_if_current` opens the file read-only
through :mod:`sqlite3` and runs the read when nothing needs saying: the file is there and at
this mailer's schema head. In every other case (another back-end, no file, another revision,
any SQLite error: damaged, busy past the timeout, unreadable) it answers None, and the caller
takes the full path, which creates nothing for a read and says what is wrong, as before.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

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


def read_if_current(url: str, read: Callable[[sqlite3.Connection], Result]) -> Result | None:
    """``read(connection)`` on the SQLite file ``url`` names, opened read-only, when the file is
    there and at the schema head; otherwise None (the caller's full path tells why)."""
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
            return read(connection)
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _sqlite_file(url: str) -> Path | None:
    match = _SQLITE_FILE_URL.match(url)
    if match is None or match["path"] == ":memory:":
        return None
    path = Path(match["path"]).absolute()
    return path if path.is_file() else None


def _revision(connection: sqlite3.Connection) -> str | None:
    rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return rows[0][0] if len(rows) == 1 else None
