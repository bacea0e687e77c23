"""`mailer db backup PATH` and the backup `mailer db upgrade` takes first, on real SQLite files.

The copy is taken while another connection keeps writing, as the web app does during a backup:
it must pass SQLite's integrity check and hold exactly the rows committed before it began.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from mailer.store.backup import backup_sqlite
from mailer.store.db import head_revision, make_engine, upgrade
from tests.migration_seed import fill_at_first_revision
from tests.mailer_cli import mailer

NOW = "2026-01-05 10:00:00.000000"
PADDING = "x" * 200  # bulk, so the database spans many backup steps


def db_file(mailer_env: dict[str, str]) -> Path:
    return Path(mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///"))


def fill_readers(url: str, count: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO subscriber (email, status, created_at, updated_at, source, attrs) "
            "VALUES (:email, 'active', :now, :now, 'import', :attrs)"),
            [{"email": f"reader{n}@example.org", "now": NOW, "attrs": PADDING}
             for n in range(count)])
    engine.dispose()


class Writer(threading.Thread):
    """Adds one reader per transaction until stopped, like sign-ups arriving at the web app."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        self.committed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO subscriber (email, status, created_at, updated_at, source) "
                    "VALUES (:email, 'pending', :now, :now, 'web')"),
                    {"email": f"new{self.committed}@example.org", "now": NOW})
            self.committed += 1

    def finish(self) -> None:
        self.stop.set()
        self.join(30)
        self.engine.dispose()


def copy_facts(path: Path) -> tuple[str, set[str], str]:
    with sqlite3.connect(path) as copy:
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        emails = {row[0] for row in copy.execute("SELECT email FROM subscriber")}
        mode = copy.execute("PRAGMA journal_mode").fetchone()[0]
    return verdict, emails, mode


@pytest.mark.slow
def test_a_backup_taken_during_writes_is_one_consistent_snapshot(mailer_env, tmp_path):
    url = mailer_env["MAILER_DATABASE_URL"]
    fill_readers(url, 20_000)
    writer = Writer(url)
    writer.start()
    deadline = time.monotonic() + 30
    while writer.committed < 20 and time.monotonic() < deadline:  # under way before the backup
        time.sleep(0.01)
    assert writer.committed >= 20, "the writer did not get going"
    committed_before = writer.committed
    seen_during: list[int] = []

    def on_progress(copied: int, total: int) -> None:
        seen_during.append(writer.committed)

    target = tmp_path / "copy.db"
    try:
        result = backup_sqlite(db_file(mailer_env), target, on_progress=on_progress,
                               pages_per_step=64)
    finally:
        writer.finish()

    assert len(seen_during) > 10 and seen_during[-1] > seen_during[0], \
        "the writer must have committed while the pages were being copied"
    verdict, emails, mode = copy_facts(target)
    assert verdict == "ok" and mode == "delete"  # one self-contained file
    assert {f"reader{n}@example.org" for n in range(20_000)} <= emails
    new = sorted(int(e.removeprefix("new").split("@")[0]) for e in emails if e.startswith("new"))
    # A snapshot: every sign-up committed before the copy began, and then an unbroken run.
    assert new == list(range(len(new))) and len(new) >= committed_before
    assert result.pages > 64 and target.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.slow
def test_cli_backup_prints_progress_while_the_app_writes(mailer_env, tmp_path):
    url = mailer_env["MAILER_DATABASE_URL"]
    fill_readers(url, 30_000)  # several 1024-page steps
    writer = Writer(url)
    writer.start()
    try:
        result = mailer(mailer_env, "db", "backup", str(tmp_path / "nightly.db"))
    finally:
        writer.finish()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("copied ")]
    assert len(progress) >= 2 and progress[-1].endswith("(100%)"), result.stdout
    assert f"to {tmp_path / 'nightly.db'}" in lines[-1] and "passes SQLite's check" in lines[-1]
    verdict, emails, _ = copy_facts(tmp_path / "nightly.db")
    assert verdict == "ok" and len([e for e in emails if e.startswith("reader")]) == 30_000


def test_backup_into_a_folder_gets_a_dated_name(mailer_env, tmp_path):
    fill_readers(mailer_env["MAILER_DATABASE_URL"], 10)
    folder = tmp_path / "backups"
    folder.mkdir()
    result = mailer(mailer_env, "db", "backup", str(folder))
    assert result.returncode == 0, result.stderr
    [copy] = folder.iterdir()
    assert copy.name.startswith("subscribers.backup-") and copy.suffix == ".db"
    assert "copied " not in result.stdout  # a small database needs no progress lines
    assert len(copy_facts(copy)[1]) == 10


def test_a_trailing_slash_names_a_folder_even_before_it_exists(mailer_env, tmp_path):
    """`mailer db backup backups/` (the help's own example) used to write a file named backups."""
    fill_readers(mailer_env["MAILER_DATABASE_URL"], 4)
    result = mailer(mailer_env, "db", "backup", "backups/")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "backups"
    assert folder.is_dir()
    [copy] = folder.iterdir()
    assert copy.name.startswith("subscribers.backup-") and len(copy_facts(copy)[1]) == 4
    nested = mailer(mailer_env, "db", "backup", "no/such/backups/")
    assert nested.returncode != 0 and not (tmp_path / "no").exists()
    assert nested.stderr.strip().splitlines() == [
        "error: cannot make folder no/such/backups: folder no/such does not exist"]


def test_backup_never_overwrites_and_says_why_in_one_line(mailer_env, tmp_path):
    fill_readers(mailer_env["MAILER_DATABASE_URL"], 3)
    existing = tmp_path / "keep.db"
    existing.write_bytes(b"precious")
    result = mailer(mailer_env, "db", "backup", str(existing))
    assert result.returncode != 0 and existing.read_bytes() == b"precious"
    assert result.stderr.strip().splitlines() == [
        f"error: {existing} exists already; a backup never overwrites a file"]
    missing_folder = mailer(mailer_env, "db", "backup", str(tmp_path / "no" / "x.db"))
    assert missing_folder.returncode != 0 and "does not exist" in missing_folder.stderr
    assert "Traceback" not in missing_folder.stderr


def test_backup_of_a_missing_database_writes_nothing(mailer_env, tmp_path):
    result = mailer(mailer_env, "db", "backup", str(tmp_path / "copy.db"))
    assert result.returncode != 0
    assert "no SQLite database at" in result.stderr
    assert not (tmp_path / "copy.db").exists() and not db_file(mailer_env).exists()


def test_postgres_backup_is_one_line_naming_pg_dump(mailer_env, tmp_path):
    env = {**mailer_env,
           "MAILER_DATABASE_URL": "postgresql+psycopg://twir:s3cret@db.internal:5433/mailer"}
    result = mailer(env, "db", "backup", str(tmp_path / "dump"))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "pg_dump --format=custom --file=" + str(tmp_path / "dump") in line
    assert line.endswith(" postgresql://twir@db.internal:5433/mailer") and "s3cret" not in line
    assert not (tmp_path / "dump").exists()


def test_upgrade_backs_up_an_outdated_database_first_and_names_the_copy(mailer_env, tmp_path):
    url = mailer_env["MAILER_DATABASE_URL"]
    fill_at_first_revision(url)
    result = mailer(mailer_env, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("backed up the database to ") and first.endswith(" before migrating")
    copy = Path(first.removeprefix("backed up the database to ").removesuffix(" before migrating"))
    assert copy.parent == db_file(mailer_env).parent and "before-upgrade-from-0001" in copy.name
    with sqlite3.connect(copy) as old:
        assert old.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0001"
        assert old.execute("SELECT count(*) FROM subscriber").fetchone()[0] == 30
    assert f"to {head_revision()}" in result.stdout

    again = mailer(mailer_env, "db", "upgrade")  # nothing to migrate: no second copy
    assert "backed up" not in again.stdout
    assert len(list(copy.parent.glob("subscribers.before-upgrade-*"))) == 1


def test_upgrade_of_a_new_database_takes_no_backup(mailer_env, tmp_path):
    result = mailer(mailer_env, "db", "upgrade")
    assert result.returncode == 0 and "backed up" not in result.stdout
    assert list(tmp_path.glob("*.before-upgrade-*")) == []
