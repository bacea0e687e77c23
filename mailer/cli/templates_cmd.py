"""`mailer templates copy DIR`: start an operator's own templates from the shipped ones."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from mailer.cli._app import app, console
from mailer.config import DEFAULT_TEMPLATES_DIR
from mailer.errors import ConfigError

templates_app = typer.Typer(no_args_is_help=True,
                            help="The e-mail and web page templates mailer ships with.")
app.add_typer(templates_app, name="templates")


@templates_app.command("copy")
def copy(
    folder: Annotated[Path, typer.Argument(help="A new folder (or an empty one) for the copy.")],
) -> None:
    """Copy the shipped templates into FOLDER, to edit there and use with
    MAILER_TEMPLATES_DIR=FOLDER. Never overwrites: FOLDER must be new or empty."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} exists and is not an empty folder; "
                          "choose a new one (nothing was copied)")
    if not folder.parent.is_dir():
        raise ConfigError(f"cannot create {folder}: folder {folder.parent} does not exist")
    shutil.copytree(DEFAULT_TEMPLATES_DIR, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    count = sum(1 for path in folder.rglob("*") if path.is_file())
    console.print(f"copied {count} template files from {DEFAULT_TEMPLATES_DIR} to {folder}",
                  highlight=False, soft_wrap=True)
    console.print(f"use them with: MAILER_TEMPLATES_DIR={folder.resolve()}", highlight=False,
                  soft_wrap=True)


@templates_app.command("path")
def path() -> None:
    """Print the folder of the shipped templates."""
    typer.echo(str(DEFAULT_TEMPLATES_DIR))
