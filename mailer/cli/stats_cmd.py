"""`mailer stats` commands."""

from __future__ import annotations

from mailer.cli._app import app  # noqa: F401
