"""The subscriber database, its WAL and shared-memory files and its backups are readable by their
owner only (issue 19, item 12): they hold every reader's address."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mailer.cli import app


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def usual_umask():
    """The common default, 022, under which SQLite's own 0644 would be world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _database_files(tmp_path: Path) -> list[Path]:
    database = tmp_path / "subscribers.db"
    return [database, database.with_name("subscribers.db-wal"),
            database.with_name("subscribers.db-shm")]


@pytest.mark.parametrize("first_command", [("db", "upgrade"),
                                           ("subscribers", "add", "reader@example.org")],
                         ids=["db upgrade", "subscribers add"])
def test_a_new_database_and_its_wal_and_shm_are_private(mailer_env, tmp_path, usual_umask,
                                                        first_command):
    from mailer.store.db import get_engine

    assert not (tmp_path / "subscribers.db").exists()
    result = cli(*first_command)
    assert result.exit_code == 0, result.output

    engine = get_engine(mailer_env["MAILER_DATABASE_URL"])
    with engine.connect() as connection:  # a writer holds the -wal and -shm open
        connection.execute(text("CREATE TABLE IF NOT EXISTS probe (n INTEGER)"))
        connection.execute(text("INSERT INTO probe VALUES (1)"))
        connection.commit()
        files = _database_files(tmp_path)
        assert all(path.exists() for path in files), [p.name for p in tmp_path.iterdir()]
        assert {path.name: oct(mode(path)) for path in files} == {
            path.name: "0o600" for path in files}


def test_an_existing_database_keeps_its_mode(mailer_env, tmp_path, usual_umask):
    database = tmp_path / "subscribers.db"
    assert cli("db", "upgrade").exit_code == 0
    os.chmod(database, 0o640)  # the operator's choice, e.g. a group that reads backups
    assert cli("subscribers", "add", "reader@example.org").exit_code == 0
    assert mode(database) == 0o640


def test_backups_are_private(mailer_env, tmp_path, usual_umask):
    assert cli("subscribers", "add", "reader@example.org").exit_code == 0
    backups = tmp_path / "backups"
    backups.mkdir()
    result = cli("db", "backup", str(backups))
    assert result.exit_code == 0, result.output
    [copy] = list(backups.iterdir())
    assert mode(copy) == 0o600
