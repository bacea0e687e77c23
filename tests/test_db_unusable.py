"""A damaged or unreadable SQLite file, met by the `mailer` commands (in process; `serve` as a
process, which must exit instead of listening).

Every command, and `mailer serve` before it listens, must answer with one `error:` line that
names the file and says what to do (restore a backup from `mailer db backup`), never a
traceback. The tests run as root, where permission bits do not stop a read, so "unreadable" is
made with things root cannot open either: a folder where the file should be, a symlink loop, a
missing folder, an immutable file (chattr +i); a chmod 000 file is tried only as another user.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from mailer.store.db import session
from mailer.subscriptions.workflow import add_subscriber
from tests.conftest import FIXTURES
from tests.plugins.processes import free_port
from tests.mailer_cli import mailer, mailer_process

PAGE = 4096


def assert_one_line_naming(result: subprocess.CompletedProcess, path: Path, *words: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback, no Rich box
    assert lines[0].startswith("error: "), lines[0]
    assert str(path) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "sqlalche.me" not in result.stderr


@pytest.fixture
def good_db(engine, mailer_env) -> Path:
    """A real mailer database with a few readers, closed and checkpointed."""
    with session(engine) as db:
        for n in range(40):
            add_subscriber(db, f"reader{n}@example.org", confirmed=True, source="test")
        db.commit()
    engine.dispose()
    path = Path(mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///"))
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    """A saved SES event, for `mailer events replay`."""
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(json.loads((FIXTURES / "ses" / "event-delivery.json").read_text())) + "\n")
    return path


# Every command that opens the database.
COMMANDS = [
    ("subscribers", "count"),
    ("subscribers", "list"),
    ("subscribers", "add", "new@example.org"),
    ("subscribers", "export"),
    ("subscribers", "show", "reader1@example.org"),
    ("stats",),
    ("stats", "--issue", "644"),
    ("stats", "--subscribers"),
    ("send", "--issue", "644", "--dry-run"),
    ("worker",),
    ("events", "replay", "{events}"),
    ("db", "upgrade"),
    ("db", "current"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_garbage_file_is_one_line_for_every_command(mailer_env, tmp_path, events_file, command):
    path = tmp_path / "subscribers.db"
    path.write_bytes(b"these bytes were never a database, " * 200)
    args = [arg.format(events=events_file) for arg in command]
    result = mailer(mailer_env, *args)
    assert_one_line_naming(result, path, "damaged", "mailer db backup")
    assert path.read_bytes() == b"these bytes were never a database, " * 200


def test_truncated_file_is_one_line(mailer_env, good_db):
    whole = good_db.read_bytes()
    good_db.write_bytes(whole[: len(whole) // 2])
    result = mailer(mailer_env, "subscribers", "count")
    assert_one_line_naming(result, good_db, "damaged", "mailer db backup")


def _damage_table_root(path: Path, table: str) -> None:
    with sqlite3.connect(path) as raw:
        (root,) = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                              (table,)).fetchone()
    raw.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * PAGE)
        file.write(b"\xff" * PAGE)


def test_a_damaged_page_read_mid_command_is_one_line(mailer_env, good_db):
    # The file opens and its schema reads fine; the damage shows only when the table is read.
    _damage_table_root(good_db, "subscriber")
    assert mailer(mailer_env, "db", "current").returncode == 0
    result = mailer(mailer_env, "subscribers", "list")
    assert_one_line_naming(result, good_db, "damaged", "mailer db backup")


def test_serve_refuses_to_start_on_a_damaged_page(mailer_env, good_db):
    _damage_table_root(good_db, "subscriber")
    result = mailer_process(mailer_env, "serve", "--port", str(free_port()), timeout=30)
    assert_one_line_naming(result, good_db, "damaged", "mailer db backup")
    assert "Uvicorn running" not in result.stderr


def test_serve_refuses_to_start_on_a_garbage_file(mailer_env, tmp_path):
    path = tmp_path / "subscribers.db"
    path.write_bytes(b"\x00garbage" * 1000)
    result = mailer_process(mailer_env, "serve", "--port", str(free_port()), timeout=30)
    assert_one_line_naming(result, path, "damaged", "mailer db backup")


def test_a_folder_in_place_of_the_file(mailer_env, tmp_path):
    path = tmp_path / "subscribers.db"
    path.mkdir()
    result = mailer(mailer_env, "subscribers", "count")
    assert_one_line_naming(result, path, "is a folder", "mailer db backup")


def test_a_symlink_loop_in_place_of_the_file(mailer_env, tmp_path):
    path = tmp_path / "subscribers.db"
    path.symlink_to(path)
    result = mailer(mailer_env, "stats")
    assert_one_line_naming(result, path, "cannot open", "mailer db backup")


def test_a_missing_folder_is_named(mailer_env, tmp_path):
    path = tmp_path / "gone" / "subscribers.db"
    env = {**mailer_env, "MAILER_DATABASE_URL": f"sqlite:///{path}"}
    result = mailer(env, "subscribers", "count")
    assert_one_line_naming(result, path, f"the folder {path.parent} does not exist")


@pytest.fixture
def immutable(good_db):
    """chattr +i: not even root may write the file (needs CAP_LINUX_IMMUTABLE and ext4 & co)."""
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(good_db)],
                                    capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    yield good_db
    subprocess.run([chattr, "-i", str(good_db)], check=True)


def test_a_file_that_cannot_be_written_is_one_line_and_unchanged(mailer_env, immutable):
    before = immutable.read_bytes()
    result = mailer(mailer_env, "subscribers", "add", "new@example.org")
    assert_one_line_naming(result, immutable, "readonly", "mailer db backup")
    assert immutable.read_bytes() == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads a chmod 000 file; the cases above cover root")
def test_a_file_without_read_permission(mailer_env, good_db):
    good_db.chmod(0)
    try:
        result = mailer(mailer_env, "subscribers", "count")
    finally:
        good_db.chmod(0o600)
    assert_one_line_naming(result, good_db, "cannot open", "mailer db backup")
