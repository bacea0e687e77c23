"""The ``mailer`` command line. An entry point: nothing in mailer imports it.

Each command's module is imported when the command runs (see ``COMMANDS`` in ``_app``), so
``mailer --version`` and ``mailer --help`` start in a fraction of a second.
"""

from __future__ import annotations

from mailer.cli._app import COMMANDS, app, load_every_command

__all__ = ["COMMANDS", "app", "load_every_command", "main"]


def main() -> None:
    app()
