"""`mailer db` commands: schema migrations."""

from __future__ import annotations

import typer

from mailer.cli._app import app, console, examples, settings

db_app = typer.Typer(help="Database schema: create or upgrade it in place.", no_args_is_help=True,
                     epilog=examples("mailer db upgrade", "mailer db current"))
app.add_typer(db_app, name="db")


@db_app.command("upgrade", short_help="Create the database or migrate it to the newest schema.",
                epilog=examples("mailer db upgrade",
                                "MAILER_DATABASE_URL=sqlite:///other.db mailer db upgrade"))
def upgrade() -> None:
    """Create the database or migrate it in place to the newest schema (no row is lost)."""
    from mailer.store.db import make_engine, upgrade as run_upgrade

    engine = make_engine(settings().database_url)
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
    from mailer.store.db import check_not_newer, current_revision, head_revision, make_engine

    revision = current_revision(make_engine(settings().database_url))
    check_not_newer(revision)
    console.print(f"database schema: {revision or 'empty'}; newest known: {head_revision()}")
