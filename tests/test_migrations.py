"""Schema migrations on real SQLite files: in-place upgrades keep every row; a database from a
newer mailer, or one not yet upgraded, stops every command with one line."""

from __future__ import annotations


import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mailer.cli import app
from mailer.store.db import current_revision, get_engine, head_revision, make_engine, upgrade
from tests.mailer_cli import mailer
from tests.migration_seed import NOW, fill_at_first_revision


def table_rows(url: str, query: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def test_a_new_database_gets_the_newest_schema_and_safe_sqlite_settings(engine):
    assert current_revision(engine) == head_revision() != ""  # the newest migration, whichever
    for _ in range(3):  # every pooled connection, including the one that ran the migration
        with engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("busy_timeout") == 30_000
            assert pragma("foreign_keys") == 1


def test_the_quick_schema_check_finds_the_same_head_as_alembic():
    # A command that only reads trusts the head read off the migration files, without alembic:
    # if the two ever disagreed, an outdated database would be read as if it were current.
    from mailer.store.db import head_from_files

    assert head_from_files() == head_revision()


def test_an_outdated_database_is_still_refused_with_the_quick_check(tmp_path):
    from mailer.errors import StoreError
    from mailer.store.db import ensure_schema

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")
    with pytest.raises(StoreError, match="out of date"):
        ensure_schema(engine)
    engine.dispose()


def test_foreign_keys_are_enforced(engine):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO subscriber_change (subscriber_id, at, to_status, source) "
                "VALUES (12345, '2026-01-01 00:00:00', 'active', 'cli')"))


@pytest.mark.slow
def test_upgrade_in_place_keeps_every_row(mailer_env):
    url = mailer_env["MAILER_DATABASE_URL"]
    fill_at_first_revision(url)
    before = {query: table_rows(url, query) for query in (
        "SELECT id, email, status, created_at FROM subscriber ORDER BY id",
        "SELECT subscriber_id, to_status FROM subscriber_change ORDER BY id",
        "SELECT campaign_id, subscriber_id, email FROM delivery ORDER BY id")}

    result = mailer(mailer_env, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"upgraded from schema 0001 to {head_revision()}" in result.stdout

    for query, rows in before.items():
        assert table_rows(url, query) == rows, query  # history did not cascade away either
    assert table_rows(url, "PRAGMA foreign_key_check") == []
    assert table_rows(url, "PRAGMA foreign_keys") == [(1,)]

    # the upgraded file works: readers are there and the new rules hold
    counted = mailer(mailer_env, "subscribers", "count", "--json")
    assert counted.returncode == 0, counted.stderr
    assert '"active": 30' in counted.stdout
    added = mailer(mailer_env, "subscribers", "add", "READER1@example.org")
    assert "already there" in added.stdout
    assert mailer(mailer_env, "db", "upgrade").stdout.startswith("database is up to date")


def test_upgrade_stops_on_rows_the_new_schema_forbids_and_changes_nothing(mailer_env):
    url = mailer_env["MAILER_DATABASE_URL"]
    fill_at_first_revision(url)
    engine = make_engine(url)
    with engine.begin() as connection:  # two rows for one reader, written before 0002
        connection.execute(text(
            "INSERT INTO subscriber (email, status, created_at, updated_at) "
            "VALUES ('Reader1@example.org', 'active', :now, :now)"), {"now": NOW})
    engine.dispose()
    rows = table_rows(url, "SELECT * FROM subscriber ORDER BY id")

    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "database is unchanged" in result.stderr
    assert table_rows(url, "SELECT version_num FROM alembic_version") == [("0001",)]
    assert table_rows(url, "SELECT * FROM subscriber ORDER BY id") == rows
    assert table_rows(url, "SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'") == []


def test_an_outdated_database_asks_for_an_upgrade(mailer_env):
    fill_at_first_revision(mailer_env["MAILER_DATABASE_URL"])
    result = CliRunner().invoke(app, ["subscribers", "count"])
    assert result.exit_code == 1
    assert "run `mailer db upgrade`" in result.stderr and "Traceback" not in result.output


def stamp_unknown_revision(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    from mailer.store.db import reset_engines

    reset_engines()


@pytest.mark.parametrize("command", [
    ["subscribers", "count"],
    ["subscribers", "add", "reader@example.org"],
    ["subscribers", "list", "--json"],
    ["db", "upgrade"],
    ["db", "current"],
])
def test_a_database_from_a_newer_mailer_is_refused_by_every_command(mailer_env, command):
    stamp_unknown_revision(mailer_env["MAILER_DATABASE_URL"])
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "0099_from_the_future" in lines[0] and "newer" in lines[0]
    assert table_rows(mailer_env["MAILER_DATABASE_URL"],
                      "SELECT version_num FROM alembic_version") == [("0099_from_the_future",)]
    assert table_rows(mailer_env["MAILER_DATABASE_URL"], "SELECT count(*) FROM subscriber") == [(0,)]


def test_the_installed_command_refuses_a_newer_database_in_one_line(mailer_env):
    stamp_unknown_revision(mailer_env["MAILER_DATABASE_URL"])
    result = mailer(mailer_env, "subscribers", "count")
    assert result.returncode == 1
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_downgrade_and_upgrade_again_keep_the_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    fill_at_first_revision(url)
    engine = make_engine(url)
    upgrade(engine)
    from alembic import command

    from mailer.store.db import alembic_config

    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        cfg = alembic_config(url)
        cfg.attributes["connection"] = connection
        with connection.begin():
            command.downgrade(cfg, "0001")
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
    assert current_revision(engine) == "0001"
    assert upgrade(engine) == ("0001", head_revision())
    assert table_rows(url, "SELECT count(*) FROM subscriber_change") == [(30,)]
    engine.dispose()


PG_COUNTED_WRITES = [  # rows of every kind the counters count, written as plain SQL
    "INSERT INTO subscriber (email, status, created_at, updated_at, source) SELECT "
    "'r' || :issue || '-' || g || '@example.org', CASE WHEN g % 5 = 0 THEN 'unsubscribed' ELSE 'active' END, "
    ":at, :at, CASE WHEN g % 3 = 0 THEN 'import' ELSE 'web' END FROM generate_series(1, 40) g",
    "INSERT INTO subscriber_change (subscriber_id, at, from_status, to_status, source) "
    "SELECT id, :at, NULL, 'active', source FROM subscriber WHERE email LIKE :batch",
    "INSERT INTO campaign (issue_number, subject, status, transport, content_sha256, "
    "created_at, started_at) VALUES (:issue, 's', 'sending', 'outbox', 'abc', :at, :at)",
    "INSERT INTO delivery (campaign_id, subscriber_id, email, status, attempts) "
    "SELECT (SELECT max(id) FROM campaign), id, email, 'queued', 0 FROM subscriber",
    "UPDATE delivery SET status = 'sent', delivered_at = :at WHERE id % 2 = 0",
    "UPDATE delivery SET status = 'sent', bounced_at = :at, bounce_type = 'permanent' "
    "WHERE id % 7 = 1",
    "INSERT INTO subscriber_change (subscriber_id, at, from_status, to_status, source) "
    "SELECT id, :later, 'active', 'unsubscribed', 'web' FROM subscriber WHERE status = 'unsubscribed'",
    "UPDATE subscriber SET status = 'bounced' WHERE id % 11 = 2",
    "DELETE FROM delivery WHERE id % 13 = 3",
]


def write_counted_rows(url: str, issue: int) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in PG_COUNTED_WRITES:
            connection.execute(text(statement), {"at": f"2026-02-0{issue} 10:00:00",
                                                 "later": f"2026-02-0{issue} 12:00:00",
                                                 "issue": issue, "batch": "%"})
        # an update of no counted column: the statement triggers find all-zero deltas
        connection.execute(text("UPDATE subscriber SET updated_at = :at"), {"at": NOW})
    engine.dispose()


def counter_mismatches(url: str) -> list:
    from mailer.reads.counters import counted_figures, differences, stored_figures
    from mailer.store.db import session

    engine = make_engine(url)
    try:
        with session(engine) as db:
            return differences(stored_figures(db), counted_figures(db))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_counters_stay_exact_through_the_statement_trigger_upgrade_and_back(pg_url):
    engine = make_engine(pg_url)
    upgrade(engine, "0015_reader_search")
    write_counted_rows(pg_url, 1)  # kept by 0014's row triggers
    assert counter_mismatches(pg_url) == []

    assert upgrade(engine) == ("0015_reader_search", head_revision())
    row_triggers = ("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'counters_%' AND "
                    "tgtype & 1 = 1 AND tgrelid::regclass::text IN "
                    "('delivery', 'subscriber', 'subscriber_change', 'campaign')")
    assert table_rows(pg_url, row_triggers) == [(0,)]  # none FOR EACH ROW left on the tables
    assert counter_mismatches(pg_url) == []
    write_counted_rows(pg_url, 2)  # kept by 0016's statement triggers, added at commit
    assert counter_mismatches(pg_url) == []
    assert table_rows(pg_url, "SELECT count(*) FROM campaign_count_deltas") == [(0,)]
    with engine.begin() as connection:  # a campaign dropped whole in one transaction
        for table in ("delivery", "campaign_counts"):
            connection.execute(text(f"DELETE FROM {table} WHERE campaign_id = 2"))
        connection.execute(text("DELETE FROM campaign WHERE id = 2"))
    assert counter_mismatches(pg_url) == []

    from alembic import command

    from mailer.store.db import alembic_config

    with engine.connect() as connection:
        cfg = alembic_config(pg_url)
        cfg.attributes["connection"] = connection
        with connection.begin():
            command.downgrade(cfg, "0015_reader_search")
    assert current_revision(engine) == "0015_reader_search"
    assert table_rows(pg_url, row_triggers) == [(9,)]
    write_counted_rows(pg_url, 3)  # 0014's row triggers again
    assert counter_mismatches(pg_url) == []
    assert upgrade(engine) == ("0015_reader_search", head_revision())
    write_counted_rows(pg_url, 4)
    assert counter_mismatches(pg_url) == []
    engine.dispose()
