"""Running the installed `mailer` command against a test's environment, and reading what it put
in the outbox: shared by the tests that drive the CLI end to end."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

MAILER = str(Path(sys.executable).with_name("mailer"))


def mailer(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``mailer ARGS`` with ``env`` over this process's, run beside the test's outbox."""
    return subprocess.run([MAILER, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, cwd=Path(env["MAILER_OUTBOX_DIR"]).parent)


def outbox(env: dict) -> list[email.message.EmailMessage]:
    """The messages in the outbox, in the order they were written (Maildir names do not sort
    by time: their microseconds are not zero-padded)."""
    folder = Path(env["MAILER_OUTBOX_DIR"]) / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)] if folder.is_dir() else []
