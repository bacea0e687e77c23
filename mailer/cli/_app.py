"""The typer application every command module registers on, and its shared helpers.

User mistakes (any :class:`~mailer.errors.MailerError`) become one ``error:`` line on stderr and
a non-zero exit, never a traceback.
"""

from __future__ import annotations

import click
import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from typer.core import TyperGroup

from mailer.config import Settings, get_settings
from mailer.errors import MailerError

console = Console()
err_console = Console(stderr=True)


class MailerGroup(TyperGroup):
    def invoke(self, ctx: click.Context):  # noqa: ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except MailerError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None


app = typer.Typer(
    cls=MailerGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    help="mailer: render, send and follow up This Week in Rust by e-mail.",
)


def settings() -> Settings:
    return get_settings()


def engine() -> Engine:
    from mailer.store.db import get_engine

    return get_engine(settings().database_url)
