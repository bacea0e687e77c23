"""The ``mailer`` command line. An entry point: nothing in mailer imports it."""

from __future__ import annotations

from mailer.cli import (  # noqa: F401 - each module registers its commands on ``app``
    check_cmd,
    db_cmd,
    doctor_cmd,
    events_cmd,
    init_cmd,
    render_cmd,
    send_cmd,
    serve_cmd,
    stats_cmd,
    subscribers_cmd,
)
from mailer.cli import templates_cmd  # noqa: F401 - registers `mailer templates`
from mailer.cli._app import app


def main() -> None:
    app()
