"""`mailer doctor`: checks the SES side before a send."""

from __future__ import annotations

from mailer.cli._app import app  # noqa: F401
