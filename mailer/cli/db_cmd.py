"""`mailer db` commands: schema migrations and backups."""

from __future__ import annotations

from contextlib import closing
from typing import Annotated

import typer

from mailer.cli._app import app, console, examples, settings
from mailer.errors import StoreError

db_app = typer.Typer(help="Database schema and backups.", no_args_is_help=True,
                     epilog=examples("mailer db upgrade", "mailer db backup backups/"))
app.add_typer(db_app, name="db")

PLAIN_PROGRESS_STEP = 10  # percent between progress lines when stdout is not a terminal


@db_app.command("upgrade", short_help="Create the database or migrate it to the newest schema.",
                epilog=examples("mailer db upgrade",
                                "MAILER_DATABASE_URL=sqlite:///other.db mailer db upgrade"))
def upgrade() -> None:
    """Create the database or migrate it in place to the newest schema (no row is lost).

    On SQLite, a database with rows to migrate is first copied beside itself
    (subscribers.before-upgrade-from-REV-TIME.db); the line naming the copy comes first."""
    from mailer.store.backup import backup_before_upgrade
    from mailer.store.db import check_not_newer, current_revision, head_revision, make_engine
    from mailer.store.db import upgrade as run_upgrade

    url = settings().database_url
    engine = make_engine(url)
    revision = current_revision(engine)
    check_not_newer(revision)  # never copy, let alone migrate, a database from a newer mailer
    saved = backup_before_upgrade(url, revision, head_revision())
    if saved is not None:
        console.print(f"backed up the database to {saved} before migrating", highlight=False,
                      soft_wrap=True)
    before, after = run_upgrade(engine)
    if before == after:
        console.print(f"database is up to date (schema {after})")
    else:
        console.print(f"database upgraded from schema {before or 'empty'} to {after}")


@db_app.command("current", short_help="Show the schema revision, and the newest known.",
                epilog=examples(
                    "mailer db current",
                    "MAILER_DATABASE_URL=postgresql+psycopg://mailer@db/twir mailer db current"))
def current() -> None:
    """Show the database's schema revision and the newest one this mailer knows."""
    from mailer.store.db import (check_not_newer, current_revision, head_revision,
                                 make_engine, refuse_missing_database)

    url = settings().database_url
    refuse_missing_database(url)  # a read: never leaves an empty file behind
    revision = current_revision(make_engine(url))
    check_not_newer(revision)
    console.print(f"database schema: {revision or 'empty'}; newest known: {head_revision()}")


@db_app.command("recount", short_help="Count every figure again from the rows.",
                epilog=examples(
                    "mailer db recount",
                    "MAILER_DATABASE_URL=postgresql+psycopg://mailer@db/twir mailer db recount"))
def recount() -> None:
    """Rebuild the figures `mailer stats`, `subscribers count` and the console read (kept on
    every write) by counting the ledger and the list again, in one transaction, and print
    what changed. Nothing changes unless a write went around mailer. Then count the finished
    sends' timelines and recipient domains again (kept once a send is over), and the weeks
    of the last half year that are over (kept once counted)."""
    from mailer.reads.counters import recount as run_recount
    from mailer.reads.list_health import keep_overview_weeks
    from mailer.reads.send_figures import keep_all_finished
    from mailer.store.db import get_existing_engine, session

    with session(get_existing_engine(settings().database_url)) as db:
        changes = run_recount(db)
        db.commit()
        # the finished sends' breakdowns, counted again against the counters just rebuilt,
        # and the overview's weeks that are over
        keep_all_finished(db)
        keep_overview_weeks(db)
    if not changes:
        console.print("counters match the rows: nothing changed")
        return
    for change in changes:
        console.print(f"{change.table} {change.key} {change.column}: "
                      f"{change.before} -> {change.after}", highlight=False)
    console.print(f"{len(changes)} counters corrected")


@db_app.command("backup", short_help="Copy the SQLite database safely while the app runs.",
                epilog=examples("mailer db backup backups/",
                                "mailer db backup /var/backups/mailer/subscribers-2026-11-29.db"))
def backup(
    path: Annotated[str, typer.Argument(
        metavar="PATH|DIR/",
        help="The copy to write (must not exist), or a folder to put a dated copy in "
             "(a trailing slash makes it when missing).")],
) -> None:
    """Copy the SQLite database consistently while the web app and sends keep writing (SQLite's
    online backup API), then check the copy. For PostgreSQL it names the pg_dump command."""
    from mailer.store.backup import backup_sqlite, pg_dump_command, resolve_target, sqlite_file

    url = settings().database_url
    database = sqlite_file(url)
    if database is None:
        raise StoreError(f"mailer backs up SQLite only; back up PostgreSQL with pg_dump: "
                         f"{pg_dump_command(url, str(path))}")
    target = resolve_target(database, path)
    with closing(BackupProgress()) as on_progress:
        result = backup_sqlite(database, target, on_progress=on_progress)
    console.print(f"backed up {database} to {result.path} ({result.pages} pages, "
                  f"{result.size_bytes / 1_048_576:.1f} MiB); the copy passes SQLite's check",
                  highlight=False, soft_wrap=True)


class BackupProgress:
    """Progress for large databases: a bar on a terminal, else a plain line every 10 %
    (cron mail and journals stay readable). A copy done in one step prints nothing."""

    def __init__(self) -> None:
        self.bar = None
        self.task = None
        self.last_percent = 0

    def __call__(self, copied: int, total: int) -> None:
        if copied >= total and self.bar is None and self.last_percent == 0:
            return
        if console.is_terminal:
            self._update_bar(copied, total)
            return
        percent = copied * 100 // max(total, 1)
        if percent >= self.last_percent + PLAIN_PROGRESS_STEP or copied == total:
            self.last_percent = percent
            console.print(f"copied {copied} of {total} pages ({percent}%)", highlight=False)

    def _update_bar(self, copied: int, total: int) -> None:
        from rich.progress import Progress

        if self.bar is None:
            self.bar = Progress(console=console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("copying pages", total=total)
        self.bar.update(self.task, completed=copied, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
