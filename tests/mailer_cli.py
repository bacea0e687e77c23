"""The one way tests run `mailer`, and read what it put in the outbox.

:func:`mailer` runs the command in this process, through typer's ``CliRunner``: the same result as
the installed command (exit code, stdout and stderr apart, the settings of ``env``, the folder it
runs in, ``.env`` read from there) without a Python start-up and every import per call.
:func:`mailer_process` starts the installed ``mailer`` instead, for the tests where a process is
the point: signals, crashes, locks held by another process, packaging, ``serve``.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

MAILER = str(Path(sys.executable).with_name("mailer"))


def _folder(env: dict, cwd: Path | str | None) -> Path | None:
    """Where the command runs: ``cwd``, else beside the test's outbox (where its .env is)."""
    if cwd is not None:
        return Path(cwd)
    return Path(env["MAILER_OUTBOX_DIR"]).parent if "MAILER_OUTBOX_DIR" in env else None


def mailer_process(env: dict, *args: str, stdin: str | bytes | None = None,
                   cwd: Path | str | None = None, text: bool = True,
                   timeout: float = 120) -> subprocess.CompletedProcess:
    """``mailer ARGS`` as a process, with ``env`` over this process's environment."""
    return subprocess.run([MAILER, *args], env={**os.environ, **env}, capture_output=True,
                          text=text, input=stdin, timeout=timeout, cwd=_folder(env, cwd))


def mailer(env: dict, *args: str, stdin: str | bytes | None = None,
           cwd: Path | str | None = None, text: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess:
    """``mailer ARGS`` in this process, as :func:`mailer_process` would run it. ``timeout`` is
    the process runner's; in process, pytest-timeout stops a command that hangs."""
    del timeout
    from typer.testing import CliRunner

    from mailer.cli import app

    from mailer.cli import _app

    folder = _folder(env, cwd)
    before, environment = os.getcwd(), dict(os.environ)
    consoles = {console: dict(console.__dict__) for console in (_app.console, _app.err_console)}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.environ.update(env)
    try:
        if folder is not None:
            os.chdir(folder)
        _forget_global_state()
        result = CliRunner().invoke(app, list(args), input=stdin, prog_name="mailer",
                                    catch_exceptions=True)
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(environment)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for console, state in consoles.items():  # as the test had them: nothing leaks out
            console.__dict__.clear()
            console.__dict__.update(state)
        _forget_global_state(consoles=False)
    stdout, stderr = result.stdout_bytes, result.stderr_bytes
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # As the process would: the traceback on stderr, exit status 1.
        stderr += "".join(traceback.format_exception(result.exception)).encode()
    if text:
        stdout, stderr = stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    return subprocess.CompletedProcess(["mailer", *args], result.exit_code, stdout, stderr)


def _forget_global_state(consoles: bool = True) -> None:
    """What one process would not carry into the next: cached settings and engines, and the
    consoles' view of the terminal (COLUMNS, NO_COLOR are read when a console is made)."""
    from mailer.cli import _app
    from mailer.config import get_settings

    get_settings.cache_clear()
    if "mailer.store.db" in sys.modules:
        sys.modules["mailer.store.db"].reset_engines()
    if consoles:
        _app.console.__init__()
        _app.err_console.__init__(stderr=True)


def outbox(env: dict) -> list[email.message.EmailMessage]:
    """The messages in the outbox, in the order they were written (Maildir names do not sort
    by time: their microseconds are not zero-padded)."""
    folder = Path(env["MAILER_OUTBOX_DIR"]) / "new"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)] if folder.is_dir() else []
