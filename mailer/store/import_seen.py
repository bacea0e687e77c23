"""The addresses one import has met so far, kept on disk instead of in memory.

The two-files rule of the Mailchimp import (an address in two files keeps the state of the
first, stricter one) and the CSV import's "repeated in the file" need to know, for every row,
whether its address came earlier in the run. A Python set of a million addresses costs about
100 MB; a scratch SQLite file in a temporary folder, asked one chunk at a time, keeps an
import's memory flat whatever the file's size. It never touches the subscribers' database, so
it works alike on SQLite and PostgreSQL and needs no write there; it is deleted when the import
ends, interrupted or not. A killed import (SIGKILL, power loss) cannot clean up after itself, so
its folder carries its pid and the next import removes the folders of imports that are gone.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mailer.errors import SubscriberError

# SQLite's parameter cap is 32,766 since 3.32, but 999 before it: stay under the old one.
_LOOKUP_BATCH = 900
_CACHE_KIB = 8 * 1024  # the scratch file's page cache: the index of a million keys is ~60 MB

First = tuple[str, int, str | None]  # (file, line, what that row decided)

_PREFIX = "mailer-import-"
_OWNED = re.compile(rf"^{_PREFIX}(\d+)-")  # mailer-import-<pid>-<random>
_UNOWNED_AFTER = 24 * 3600  # seconds: folders of older versions carry no pid


def sweep_abandoned_scratch(folder: str | None = None) -> int:
    """Remove the scratch folders of imports that were killed; how many went.

    Only this user's folders, and only those whose process no longer exists (or, without a pid
    in the name, that are a day old): an import running beside this one keeps its file.
    """
    removed = 0
    root = Path(folder or tempfile.gettempdir())
    try:
        entries = list(root.glob(f"{_PREFIX}*"))
    except OSError:
        return 0
    for entry in entries:
        if _is_abandoned(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed += not entry.exists()
    return removed


def _is_abandoned(entry: Path) -> bool:
    try:
        info = entry.lstat()
    except OSError:
        return False
    if not entry.is_dir() or entry.is_symlink() or info.st_uid != os.getuid():
        return False
    owned = _OWNED.match(entry.name)
    if owned is None:
        return time.time() - info.st_mtime > _UNOWNED_AFTER
    return not _process_exists(int(owned.group(1)))


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class SeenAddresses:
    """``with SeenAddresses() as seen:`` … ``seen.earlier(keys)``, ``seen.add(entries)``.

    Keys are the caller's folded addresses (the comparison its rule uses); each keeps where it
    was first met and what that row decided (a status, or None).
    """

    def __init__(self) -> None:
        sweep_abandoned_scratch()
        try:  # mode 0700: the addresses are personal data
            self._folder = tempfile.TemporaryDirectory(prefix=f"{_PREFIX}{os.getpid()}-")
        except OSError as error:
            raise SubscriberError(
                f"cannot make the import's scratch folder in {tempfile.gettempdir()} "
                f"({error.strerror or error}): set TMPDIR to a writable folder") from None
        self._files: dict[str, int] = {}
        self._names: list[str] = []
        try:
            with self._reported():
                self._db = sqlite3.connect(Path(self._folder.name) / "seen.db",
                                           isolation_level=None)
                # A scratch file: nothing to recover after a crash, so no journal, no fsync.
                self._db.execute("PRAGMA journal_mode=OFF")
                self._db.execute("PRAGMA synchronous=OFF")
                self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
                self._db.execute("CREATE TABLE seen (address TEXT PRIMARY KEY, file INTEGER "
                                 "NOT NULL, line INTEGER NOT NULL, decided TEXT) WITHOUT ROWID")
        except SubscriberError:
            self._folder.cleanup()
            raise

    @contextmanager
    def _reported(self) -> Iterator[None]:
        """A full or unwritable temporary folder is one error line, not a traceback; the
        chunks committed so far stay, and the same command finishes the import."""
        try:
            yield
        except sqlite3.Error as error:
            raise SubscriberError(
                f"the import's scratch file in {self._folder.name} failed ({error}): give it "
                "room, or another folder with TMPDIR, and run the same command again") from None

    def __enter__(self) -> SeenAddresses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        self._folder.cleanup()

    def earlier(self, keys: Iterable[str]) -> dict[str, First]:
        """Those of ``keys`` met before, with where they were first met."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, First] = {}
        with self._reported():
            for start in range(0, len(keys), _LOOKUP_BATCH):
                batch = keys[start:start + _LOOKUP_BATCH]
                marks = ",".join("?" * len(batch))
                for key, file, line, decided in self._db.execute(
                        f"SELECT address, file, line, decided FROM seen WHERE address IN "
                        f"({marks})", batch):
                    found[key] = (self._names[file], line, decided)
        return found

    def add(self, entries: Iterable[tuple[str, str, int, str | None]]) -> None:
        """Remember (key, file, line, decided) for keys not met before (the caller checked)."""
        rows = [(key, self._file_number(file), line, decided)
                for key, file, line, decided in entries]
        if not rows:
            return
        with self._reported():
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def _file_number(self, name: str) -> int:
        number = self._files.get(name)
        if number is None:
            number = self._files[name] = len(self._names)
            self._names.append(name)
        return number
