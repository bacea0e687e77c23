"""PostgreSQL, the scale-out path: migrations and the command line on a real server.

The store's behaviour is tested on both databases in test_subscribers.py; this file covers what
only a PostgreSQL deployment does. Skips with the reason when MAILER_TEST_DATABASE_URL is unset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.store.db import current_revision, head_revision, make_engine, reset_engines, upgrade

pytestmark = pytest.mark.postgres
MAILER = str(Path(sys.executable).parent / "mailer")


@pytest.fixture
def pg_env(mailer_env, pg_url, monkeypatch):
    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    reset_engines()
    return {**mailer_env, "MAILER_DATABASE_URL": pg_url}


def scalar(url: str, query: str):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(query)).scalar()
    finally:
        engine.dispose()


def test_upgrade_in_place_on_postgresql_keeps_rows_and_adds_the_case_rule(pg_url):
    engine = make_engine(pg_url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO subscriber (email, status, created_at, updated_at) "
            "SELECT 'r' || n || '@example.org', 'active', now(), now() "
            "FROM generate_series(1, 50) AS n"))
        connection.execute(text(
            "INSERT INTO subscriber_change (subscriber_id, at, to_status, source) "
            "SELECT id, now(), 'active', 'import' FROM subscriber"))
    assert upgrade(engine) == ("0001", head_revision())
    assert scalar(pg_url, "SELECT count(*) FROM subscriber") == 50
    assert scalar(pg_url, "SELECT count(*) FROM subscriber_change") == 50
    with pytest.raises(Exception, match="ux_subscriber_email_lower"):
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO subscriber (email, status, created_at, updated_at) "
                "VALUES ('R1@example.org', 'active', now(), now())"))
    engine.dispose()


def test_command_line_on_postgresql(pg_env, tmp_path):
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email\n" + "".join(f"r{n}@example.org\n" for n in range(3_000)))
    env = {**os.environ, **pg_env}
    imported = subprocess.run([MAILER, "subscribers", "import", str(csv_file), "--confirmed",
                               "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["added"] == 3_000
    runner = CliRunner()
    assert runner.invoke(app, ["subscribers", "remove", "r5@example.org"]).exit_code == 0
    counted = json.loads(runner.invoke(app, ["subscribers", "count", "--json"]).stdout)
    assert (counted["active"], counted["unsubscribed"]) == (2_999, 1)


def test_a_newer_postgresql_database_is_refused(pg_env):
    engine = make_engine(pg_env["MAILER_DATABASE_URL"])
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    result = CliRunner().invoke(app, ["subscribers", "count"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "0099_future" in result.stderr
    assert current_revision(engine) == "0099_future"
    engine.dispose()
