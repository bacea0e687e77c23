"""`mailer init`: write a ``.env`` for this folder, so a first run needs no other set-up.

It holds a random MAILER_SECRET_KEY (nothing signs links without a real key) and the sender,
the base URL and the transport: asked for on a terminal, or taken from the flags and the
defaults with ``--yes`` or when no terminal is attached. The file is created with mode 0600
(it holds the key) and never replaced without ``--force``; a ``.env`` that is a symbolic link
is replaced through the link, at its target.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
import tempfile
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from mailer.cli._app import app, console, examples
from mailer.config import Settings, check_web_url
from mailer.errors import ConfigError

ENV_FILE = Path(".env")
TRANSPORTS = ("outbox", "ses", "smtp")
_DEFAULTS = Settings.model_fields
DEFAULT_FROM = _DEFAULTS["from_"].default
DEFAULT_BASE_URL = _DEFAULTS["base_url"].default
DEFAULT_TRANSPORT = _DEFAULTS["transport"].default


@app.command("init", short_help="Write a .env here: a random secret key, sender, base URL.",
             epilog=examples(
                 "mailer init                              # asks on a terminal",
                 "mailer init --yes                        # defaults: the local outbox",
                 "mailer init --from 'TWiR <twir@example.org>' --transport ses --yes"))
def init(
    sender: Annotated[str | None, typer.Option(
        "--from", help="Sender of the newsletter, e.g. 'This Week in Rust <twir@example.org>'.",
        show_default=False)] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="Public URL of the web app (links in mail, the SES web hook).",
        show_default=False)] = None,
    transport: Annotated[str | None, typer.Option(
        "--transport", help="outbox (a local folder, nothing leaves the machine), ses or smtp.",
        show_default=False)] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Ask nothing: take the flags, else the defaults.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing .env, or a symlinked one's target (a new key "
                   "breaks links already mailed).")
    ] = False,
) -> None:
    """Write a .env for this folder: a new random MAILER_SECRET_KEY (file mode 0600), the
    sender, the base URL and the transport. On a terminal it asks for the values not given as
    flags; with --yes, or without a terminal, it takes the flags and the defaults."""
    if ENV_FILE.exists() and not force:
        raise ConfigError(f"{ENV_FILE} already exists here; nothing changed. Pass --force to "
                          "replace it (its new key breaks links in mail already sent)")
    ask = not yes and sys.stdin.isatty()
    values = {
        "MAILER_FROM": _sender(_value(sender, "Sender (From)", DEFAULT_FROM, ask)),
        "MAILER_BASE_URL": _base_url(_value(base_url, "Public URL of the web app",
                                            DEFAULT_BASE_URL, ask)),
        "MAILER_TRANSPORT": _transport(_value(transport, "Transport (outbox, ses, smtp)",
                                              DEFAULT_TRANSPORT, ask)),
    }
    written = write_env_file(ENV_FILE, env_text(secrets.token_urlsafe(48), values), replace=force)
    _report(values, written)


def _value(given: str | None, question: str, default: str, ask: bool) -> str:
    if given is not None:
        return given
    return typer.prompt(question, default=default) if ask else default


# -- checks: a bad value is one line and no file --------------------------------------------

def _sender(text: str) -> str:
    text = text.strip()
    name, address = parseaddr(text)
    local, _, domain = address.rpartition("@")
    if _has_control(text) or not local or "." not in domain or " " in address:
        raise ConfigError(f"--from: {text!r} is not a sender such as "
                          "'This Week in Rust <newsletter@example.org>'")
    return text


def _base_url(text: str) -> str:
    text = text.strip().rstrip("/")
    parts = urlsplit(text)
    if _has_control(text) or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--base-url: {text!r} is not an http(s) URL such as "
                          "https://twir.example.org")
    try:  # the rule MAILER_BASE_URL is loaded by: never write a .env that will not load
        return check_web_url(text, example="https://twir.example.org", bare=True)
    except ValueError as error:
        raise ConfigError(f"--base-url: {text!r} {error}") from None


def _transport(text: str) -> str:
    text = text.strip().lower()
    if text not in TRANSPORTS:
        raise ConfigError(f"--transport: {text!r} is not one of {', '.join(TRANSPORTS)}")
    return text


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


# -- the file ---------------------------------------------------------------------------------

def _quoted(value: str) -> str:
    # Single quotes: python-dotenv reads them literally (no escapes, no ${...} expansion).
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_text(secret_key: str, values: dict[str, str]) -> str:
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Written by `mailer init` on {written}. Every MAILER_* setting is described in",
        "# .env.example; the environment overrides this file.",
        "",
        "# Signs confirm and unsubscribe links: the web app must use the same key. Keep it",
        "# secret. A new key breaks links in mail already sent (forgotten addresses stay",
        "# forgotten).",
        f"MAILER_SECRET_KEY={secret_key}",
        "",
    ]
    lines += [f"{name}={_quoted(value)}" for name, value in values.items()]
    if values["MAILER_TRANSPORT"] == "smtp":
        lines += ["# Set the SMTP server (STARTTLS on 587, or smtps:// on 465):",
                  "# MAILER_SMTP_URL=smtp://user:password@smtp.example.org:587"]
    if values["MAILER_TRANSPORT"] == "ses":
        lines += ["# AWS credentials come from the standard chain (environment, ~/.aws, role).",
                  "# MAILER_SES_REGION=us-east-1",
                  "# MAILER_SES_CONFIGURATION_SET=twir-events"]
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, text: str, *, replace: bool) -> Path:
    """Write ``path`` with mode 0600 from its first byte, so the key is never readable by
    others; the file appears whole or not at all, and without ``replace`` an existing one
    (even one created a moment ago) is never overwritten.

    Replacing a symbolic link (the deploy links /var/lib/mailer/.env to /etc/mailer/mailer.env)
    writes through it to its target, keeping the target's mode and owner where this user may,
    so the link and the units reading the target keep working (a plain file is replaced by a
    new 0600 one). Returns the file written."""
    through_link = replace and path.is_symlink()
    target = Path(os.path.realpath(path)) if through_link else path
    try:
        _write_whole(target, text, replace=replace,
                     like=_stat_or_none(target) if through_link else None)
    except FileExistsError:
        raise ConfigError(f"{path} already exists here; nothing changed. Pass --force to "
                          "replace it") from None
    except OSError as error:
        raise ConfigError(f"cannot write {target}: {error.strerror or error}; nothing "
                          "changed") from None
    return target


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _write_whole(target: Path, text: str, *, replace: bool, like: os.stat_result | None) -> None:
    # The temporary file sits beside the target, so the rename below is atomic.
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.",
                                             dir=target.resolve().parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)  # mkstemp's mode already; said here because it matters
        if like is not None:
            _take_mode_and_owner(temporary, like)
        if replace:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)  # fails if the name exists: no check-then-write race
    finally:
        Path(temporary).unlink(missing_ok=True)


def _take_mode_and_owner(temporary: str, like: os.stat_result) -> None:
    """The replaced file's owner (when this user may give it) and mode, e.g. the deploy's
    root:mailer 0640, which the units reading it rely on."""
    for uid in (like.st_uid, -1):  # only root may give a file away; the group may still fit
        try:
            os.chown(temporary, uid, like.st_gid)
            break
        except PermissionError:
            continue
    os.chmod(temporary, stat.S_IMODE(like.st_mode))


def _where(written: Path) -> str:
    mode = f"mode {stat.S_IMODE(written.stat().st_mode):04o}"
    if ENV_FILE.is_symlink():
        return f"{written.resolve()} (through the link {ENV_FILE}, {mode})"
    return f"{written.resolve()} ({mode})"


def _report(values: dict[str, str], written: Path) -> None:
    transport = values["MAILER_TRANSPORT"]
    console.print(f"wrote {_where(written)} with a new random MAILER_SECRET_KEY; "
                  f"sender {values['MAILER_FROM']}, base URL {values['MAILER_BASE_URL']}, "
                  f"transport {transport}", highlight=False, markup=False, soft_wrap=True)
    if transport == "smtp":
        console.print("set MAILER_SMTP_URL in .env before sending", highlight=False)
    console.print("next:", highlight=False)
    for command in next_commands(transport):
        console.print(f"  {command}", highlight=False, markup=False)


def next_commands(transport: str) -> list[str]:
    if transport == "outbox":
        return ["mailer db upgrade",
                "mailer subscribers add you@example.org --confirmed",
                "mailer send --issue 644 --yes      # writes the mail to outbox/"]
    first_check = "mailer doctor" if transport == "ses" else "mailer send --issue 644 --dry-run"
    return ["mailer db upgrade",
            first_check,
            "mailer send --issue 644 --to you@example.org   # one test copy to yourself"]
