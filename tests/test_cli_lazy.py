"""`mailer --version` and `mailer --help` answer without loading what only commands need: each
command's module is imported when that command runs (issue 22). The time it takes is measured
by benchmarks/startup.py; here, what it loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer

from mailer.cli import COMMANDS, app, load_every_command

HEAVY = ("boto3", "botocore", "sqlalchemy", "sqlmodel", "alembic", "premailer", "mjml", "fastapi",
         "uvicorn", "pydantic_settings", "jinja2")

# A fresh interpreter runs the entry point as the installed `mailer` script does, then says
# which of the heavy libraries it loaded.
PROBE = """
import json, sys
sys.argv = ["mailer", *json.loads(sys.argv[1])]
from mailer.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)), file=sys.stderr)
""".format(heavy=list(HEAVY))


def heavy_libraries_loaded_by(*args: str, cwd=None, env=None) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args))], cwd=cwd,
                            env={**os.environ, **(env or {})}, capture_output=True, text=True,
                            timeout=120)
    return json.loads(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("db", "--help")])
def test_a_command_that_needs_no_database_loads_none_of_the_heavy_libraries(args):
    assert heavy_libraries_loaded_by(*args) == []


def test_a_command_that_uses_the_database_still_loads_it(mailer_env, tmp_path):
    # The probe can tell: `stats` reads the database (here none is there: an error line).
    loaded = heavy_libraries_loaded_by("stats", "--json", cwd=tmp_path, env=mailer_env)
    assert "sqlalchemy" in loaded


def test_the_command_list_says_what_each_command_says_of_itself():
    load_every_command()
    commands = typer.main.get_command(app).commands
    assert sorted(commands) == sorted(COMMANDS)  # a new command is named in the table too
    for name, command in commands.items():
        assert COMMANDS[name][1] == command.get_short_help_str(limit=200), name


@pytest.mark.parametrize("args", [("subscribers", "count", "--json"),
                                  ("stats", "--subscribers", "--json")])
def test_the_list_counts_read_a_current_sqlite_file_without_sqlalchemy(mailer_env, tmp_path,
                                                                       args):
    # Issue 23: at a million readers these are two small counter tables; importing SQLAlchemy,
    # SQLModel and the models was most of their second. A file at the schema head is read with
    # sqlite3 alone, and says the same.
    from tests.mailer_cli import mailer, mailer_process

    assert mailer(mailer_env, "subscribers", "add", "ann@example.org", "--confirmed").returncode == 0
    loaded = heavy_libraries_loaded_by(*args, cwd=tmp_path, env=mailer_env)
    assert "sqlalchemy" not in loaded and "sqlmodel" not in loaded
    result = json.loads(mailer_process(mailer_env, *args, cwd=tmp_path).stdout)
    totals = result.get("totals", result)
    assert {status: totals[status] for status in ("pending", "active", "unsubscribed")} == {
        "pending": 0, "active": 1, "unsubscribed": 0}
    if "weeks" in result:
        assert [week["confirmed"] for week in result["weeks"]] == [1]


def test_the_overview_reads_a_current_sqlite_file_without_sqlalchemy_and_says_the_same(
        mailer_env, engine, tmp_path, monkeypatch):
    # Issue 23: `mailer stats` is one small query (the campaigns and their counters); through
    # sqlite3 alone it prints what the store's path prints, warnings included.
    from mailer.reads import quick_counts
    from tests.mailer_cli import mailer
    from tests.stats_ledger import build_ledger

    build_ledger(engine)
    env = {**mailer_env, "COLUMNS": "200"}
    loaded = heavy_libraries_loaded_by("stats", cwd=tmp_path, env=env)
    assert "sqlalchemy" not in loaded and "sqlmodel" not in loaded
    quick = mailer(env, "stats")
    monkeypatch.setattr(quick_counts, "campaigns_quickly", lambda _url: None)
    through_the_store = mailer(env, "stats")
    assert quick.returncode == through_the_store.returncode == 0, quick.stderr
    assert quick.stdout == through_the_store.stdout
    assert "644" in quick.stdout and "SES's 5 % review threshold" in quick.stdout


def test_the_quick_overview_reads_the_same_campaigns_as_the_store(engine, settings):
    from mailer.reads.delivery_figures import campaign_stats
    from mailer.reads.quick_counts import campaigns_quickly
    from mailer.store.db import session
    from tests.stats_ledger import build_ledger

    build_ledger(engine)
    with session(engine) as db:
        assert campaigns_quickly(settings.database_url) == campaign_stats(db)
    assert campaigns_quickly("postgresql+psycopg://nobody@127.0.0.1:1/none") is None


def test_an_issue_whose_send_is_over_reads_without_sqlalchemy_and_says_the_same(
        mailer_env, engine, tmp_path, monkeypatch):
    # Issue 23: `stats --issue` of a finished send reads its kept breakdowns (the same SQL
    # text as the store's path) through sqlite3 alone, once the store's path has kept them.
    from mailer.reads import quick_counts
    from tests.mailer_cli import mailer
    from tests.stats_ledger import build_ledger

    build_ledger(engine)
    env = {**mailer_env, "COLUMNS": "200"}
    monkeypatch.setattr(quick_counts, "issue_quickly", lambda _url, _number: None)
    for args in (("stats", "--issue", "644", "--json"), ("stats", "--issue", "644")):
        through_the_store = mailer(env, *args)  # the first read keeps the breakdowns
        monkeypatch.undo()
        loaded = heavy_libraries_loaded_by(*args, cwd=tmp_path, env=env)
        assert "sqlalchemy" not in loaded and "sqlmodel" not in loaded
        quick = mailer(env, *args)
        assert quick.returncode == through_the_store.returncode == 0, quick.stderr
        assert quick.stdout == through_the_store.stdout
        monkeypatch.setattr(quick_counts, "issue_quickly", lambda _url, _number: None)
    summary = json.loads(mailer(env, "stats", "--issue", "644", "--json").stdout)["summary"]
    assert (summary["sent"], summary["bounced_hard"]) == (36, 2)


def test_the_quick_issue_read_leaves_a_running_or_moved_send_to_the_store(engine, settings):
    from sqlalchemy import update

    from mailer.reads.delivery_figures import issue_detail
    from mailer.reads.quick_counts import issue_quickly
    from mailer.store.db import session
    from mailer.store.models import Delivery
    from tests.stats_ledger import build_ledger

    build_ledger(engine)
    url = settings.database_url
    with session(engine) as db:
        kept = issue_detail(db, 644)  # kept (when the send ended, or by this first read)
    assert issue_quickly(url, 644) == kept
    assert issue_quickly(url, 999) is None  # no such issue: the store's path says so
    with session(engine) as db:
        # an event's mark (delivered, bounced) is read live from the marked rows: still quick
        db.execute(update(Delivery).where(Delivery.id == 1).values(delivered_at=None))
        db.commit()
        assert issue_quickly(url, 644) == issue_detail(db, 644) != kept
        # a row's status moves the counters the breakdowns were kept at: the store counts again
        db.execute(update(Delivery).where(Delivery.id == 2).values(status="failed"))
        db.commit()
        assert issue_quickly(url, 644) is None
        moved = issue_detail(db, 644)  # counted and kept again
    assert issue_quickly(url, 644) == moved


@pytest.mark.postgres
def test_the_quick_reads_of_postgresql_equal_the_store_s(pg_url):
    # The same SQL texts through psycopg alone: a tenth of a second to import, where
    # SQLAlchemy and the models take half a second.
    from mailer.reads.delivery_figures import campaign_stats, issue_detail
    from mailer.reads.quick_counts import (
        campaigns_quickly,
        issue_quickly,
        subscriber_growth_quickly,
        subscribers_by_status_quickly,
    )
    from mailer.reads.subscriber_figures import subscriber_growth, subscribers_by_status
    from mailer.store.db import get_engine, session
    from tests.stats_ledger import build_ledger

    engine = get_engine(pg_url)
    build_ledger(engine)
    with session(engine) as db:
        detail = issue_detail(db, 644)  # keeps the breakdowns
        assert campaigns_quickly(pg_url) == campaign_stats(db)
        assert issue_quickly(pg_url, 644) == detail
        assert subscribers_by_status_quickly(pg_url) == subscribers_by_status(db)
        assert subscriber_growth_quickly(pg_url, 4) == (subscriber_growth(db, 4),
                                                        subscribers_by_status(db))
    assert campaigns_quickly(pg_url.rsplit("/", 1)[0] + "/no_such_database") is None
