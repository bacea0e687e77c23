"""The typer application every command module registers on, and its shared helpers.

User mistakes (any :class:`~mailer.errors.MailerError`) become one ``error:`` line on stderr and
a non-zero exit, never a traceback; so does a database file that is damaged or cannot be read,
at whatever point of a command it shows. Help stays quiet: one short line per command in the
list, no type tags beside options, and a few real examples at the end of each ``--help``.

Text that came from outside (bounce diagnostics, addresses, subjects, SMTP answers, file
contents) goes through :func:`shown` before it is printed: Rich would read ``[/]`` in it as
markup, and a terminal would obey the escape sequences in it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from mailer.errors import ConfigError, MailerError

if TYPE_CHECKING:  # pydantic and SQLAlchemy cost tenths of a second: loaded where they are used
    from sqlalchemy.engine import Engine

    from mailer.config import Settings

# Output that is not read on a terminal (a pipe, a file, cron's mail) is data: Rich would fit it
# to 80 columns, cutting table cells to "…" and breaking addresses across lines. Such output is
# as wide as it needs to be, unless COLUMNS says otherwise.
UNBOUNDED_WIDTH = 10_000


class _Console(Console):
    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal or "COLUMNS" in os.environ or self._width is not None:
            return size
        return ConsoleDimensions(UNBOUNDED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = _Console()
err_console = _Console(stderr=True)

Result = TypeVar("Result")


# Every command, in the order a newcomer meets them: the module that defines it and its line in
# `mailer --help`. A command's module is imported only when that command runs (or its own --help
# is asked for), so `mailer --version`, `--help` and a light command do not load boto3,
# SQLAlchemy, alembic, premailer or FastAPI. tests/test_cli_lazy.py checks each line here against
# the command's own short_help.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init_cmd", "Write a .env here: a random secret key, sender, base URL."),
    "render": ("render_cmd", "Render an issue to HTML, plaintext and MJML files."),
    "preview": ("render_cmd", "Render an issue and say which file to open."),
    "check": ("check_cmd", "Lint issues before readers see them; exit 1 on errors."),
    "subscribers": ("subscribers_cmd", "Readers: add, import, export, list, remove, forget."),
    "send": ("send_cmd", "Send an issue to every confirmed reader, exactly once."),
    "worker": ("send_cmd", "Join a send from another machine (PostgreSQL)."),
    "serve": ("serve_cmd", "Run the web app: subscribe, unsubscribe, SES web hook."),
    "events": ("events_cmd", "SES events: replay saved notifications or poll an SQS queue."),
    "stats": ("stats_cmd", "Delivery figures per issue, and the list's growth."),
    "doctor": ("doctor_cmd", "Check that the SES side is ready for a send."),
    "db": ("db_cmd", "Database schema and backups."),
    "templates": ("templates_cmd", "The e-mail and web page templates mailer ships with."),
}
# Any command not named above follows them.
COMMAND_ORDER = tuple(COMMANDS)


def load_command_module(name: str) -> None:
    """Import the module that registers command ``name`` on :data:`app`."""
    import importlib

    importlib.import_module(f"mailer.cli.{COMMANDS[name][0]}")


def load_every_command() -> None:
    """Register every command on :data:`app` (for tools that walk the whole command tree)."""
    for name in COMMANDS:
        load_command_module(name)


# C0 and C1 controls, DEL, and the bidirectional overrides that make text read in another order
# than it is stored ("Trojan Source"); each is shown as its Python escape instead.
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible_controls(value: object) -> str:
    """``value`` as text with every control character written out (ESC becomes ``\\x1b``)."""
    return _INVISIBLE.sub(_visible, str(value))


def shown(value: object) -> str:
    """Outside text made safe to put in a Rich markup string or a table cell: shown as is."""
    return escape(visible_controls(value))


# JSON escapes C0 controls itself but lets these through raw; they can only occur inside strings.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(data: object, indent: int | None = 2) -> str:
    """JSON for scripts; the controls JSON allows raw are escaped as well (``\\u009b``)."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _print_error(error: MailerError) -> None:
    err_console.print(f"[bold red]error:[/] {shown(error)}", highlight=False, soft_wrap=True)


class MailerGroup(TyperGroup):
    """The root command: commands of :data:`COMMANDS` are loaded when first resolved."""

    def list_commands(self, ctx) -> list[str]:
        names = set(super().list_commands(ctx)) | set(COMMANDS)
        rank = {name: index for index, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))

    def get_command(self, ctx, name: str):
        command = super().get_command(ctx, name)
        if command is None and name in COMMANDS:
            # Only listed (the root --help): a stand-in that knows its one line of help.
            return TyperCommand(name, short_help=COMMANDS[name][1], help=COMMANDS[name][1])
        return command

    def resolve_command(self, ctx, args: list[str]):
        name = args[0] if args else None
        if name in COMMANDS and name not in self.commands:
            self.commands[name] = _loaded_command(name)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MailerError as error:
            _print_error(error)
            raise typer.Exit(error.exit_code) from None
        except Exception as error:  # re-raised unless it is a database's
            readable = _unusable_database(error)
            if readable is None:
                raise
            _print_error(readable)
            raise typer.Exit(readable.exit_code) from None


def _loaded_command(name: str):
    """The click command ``name`` as its module declares it, once that module is imported."""
    load_command_module(name)
    return typer.main.get_group(app).commands[name]


def _unusable_database(error: Exception) -> MailerError | None:
    """A damaged or unreadable database met mid-command, as a one-line error (else None)."""
    exc = sys.modules.get("sqlalchemy.exc")  # not loaded: the error cannot be SQLAlchemy's
    if exc is None or not isinstance(error, exc.DBAPIError):
        return None
    from mailer.store.db import unusable_database

    try:
        url = settings().database_url
    except MailerError:
        return None
    return unusable_database(error, url)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """A count the one way every command writes it: "1 reader", "2,000 readers"."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def examples(*lines: str) -> str:
    """An epilog of real command lines (``command  # what it does``) for a ``--help``."""
    return "Examples:\n" + "\n".join(lines)


def with_options(
    options_type: type,
) -> Callable[[Callable[[Any], Result]], Callable[..., Result]]:
    """Declare a command's options as the dataclass ``options_type``, one field per option
    (``name: Annotated[type, typer.Option(...)] = default``); the command receives one value.

    Typer reads a command's options from its signature, so the command it is shown has one made
    of the fields, in their order, with their annotations already resolved (the modules use
    ``from __future__ import annotations``, and typer does not resolve a ``__signature__``)."""
    hints = get_type_hints(options_type, include_extras=True)
    parameters = [
        inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[field.name],
            default=inspect.Parameter.empty if field.default is dataclasses.MISSING
            else field.default)
        for field in dataclasses.fields(options_type)
    ]

    def decorate(command: Callable[[Any], Result]) -> Callable[..., Result]:
        @functools.wraps(command)
        def with_values(**values: Any) -> Result:
            return command(options_type(**values))

        with_values.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        with_values.__annotations__ = {parameter.name: parameter.annotation
                                       for parameter in parameters}
        return with_values

    return decorate


# What an option's value is, shown beside it in --help (`--issue N`, `--to ADDRESS`): one word
# for one kind of value across every command. An option not named here is named by its type.
METAVARS = {
    "--issue": "N", "--campaign": "ID", "--limit": "N", "--concurrency": "N", "--max": "N",
    "--weeks": "N", "--port": "PORT", "--host": "HOST", "--html-budget": "BYTES",
    "--to": "ADDRESS", "--preview-to": "ADDRESS", "--from": "ADDRESS", "--base-url": "URL",
    "--queue-url": "URL", "--endpoint-url": "URL", "--region": "REGION",
    "--rate": "PER_SECOND", "--wait": "SECONDS", "--late-after": "SECONDS", "--every": "SECONDS",
    "--not-before": "AGE", "--canary": "SHARE", "--canary-wait": "DURATION",
    "--source": "PATH", "--out": "DIR", "--format": "FORMAT", "--transport": "NAME",
}
_METAVARS_BY_TYPE = {int: "N", float: "NUMBER", Path: "PATH", str: "TEXT"}


def option_metavar(option: Any) -> str | None:
    """The word shown for an option's value, or None for a flag (which takes none)."""
    annotation = getattr(getattr(option, "type_descriptor", None), "annotation", None)
    if annotation is bool or getattr(option, "param_type_name", "option") != "option":
        return None
    declared = next((name for name in option.opts if name in METAVARS), None)
    return METAVARS[declared] if declared else _METAVARS_BY_TYPE.get(annotation, "VALUE")


def _hide_type_tags() -> None:
    """Newer typer prints a tag beside every option (``<bool>``, ``<str>``, ``<int range>``); the
    help texts say the rest. Keep choices (``outbox|ses|smtp``) and explicit metavars, and name
    every other value by :data:`METAVARS`. Older typer has no such tags and no
    ``display_type_rich``."""
    from typer import core

    for cls in (core.TyperOption, core.TyperArgument):
        original = getattr(cls, "display_type_rich", None)
        if original is None or getattr(original, "_mailer_quiet", False):
            continue

        def display_type_rich(self, ctx, _original=original):
            if self.metavar is not None:
                return self.metavar
            descriptor = getattr(self, "type_descriptor", None)
            if descriptor is not None and descriptor.is_choice:
                return (_original(self, ctx) or "").strip("<>") or None
            return option_metavar(self)

        display_type_rich._mailer_quiet = True  # type: ignore[attr-defined]
        cls.display_type_rich = display_type_rich


_hide_type_tags()

app = typer.Typer(
    cls=MailerGroup,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (README: shell completion)
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    help="mailer: render, send and follow up This Week in Rust by e-mail.",
    epilog=examples(
        "mailer init                        # write .env with a random key",
        "mailer send --issue 644 --dry-run",
        "mailer subscribers --help          # each command has help and examples",
    ),
)


def mailer_version() -> str:
    from importlib.metadata import PackageNotFoundError, version as package_version

    try:
        return package_version("mailer")
    except PackageNotFoundError:  # run from a checkout that was never installed
        from mailer import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mailer {mailer_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Show mailer's version and exit.")] = False,
) -> None:
    # Only --version lives here; the group's help is the Typer's help= above.
    del version


def settings() -> Settings:
    from mailer.config import get_settings

    if get_settings.cache_info().currsize == 0:  # once, before the settings are first read
        check_env_file()
    return get_settings()


def check_env_file(path: Path | None = None) -> None:
    """A ``.env`` that is there but cannot be read is a one-line ConfigError naming the file:
    pydantic-settings would skip a dangling link or a folder (running on defaults: another
    database, the outbox) and fail on an unreadable file with a traceback. None at all is fine."""
    if path is None:
        from mailer.config import ENV_FILE

        path = Path(ENV_FILE)
    if not path.is_symlink() and not path.exists():
        return
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a loop of links (RuntimeError before Python 3.13)
        target = path.absolute()
    try:
        with path.open("rb"):
            return
    except PermissionError:
        why = ("permission denied; run mailer as the user the file belongs to, or give that "
               "user read access")
    except FileNotFoundError:
        why = "it is a link to a file that does not exist; restore the file or remove the link"
    except IsADirectoryError:
        why = "it is a folder, not a file of MAILER_* settings"
    except OSError as error:
        why = f"{error.strerror or error}; make it a readable file of MAILER_* settings"
    raise ConfigError(f"cannot read {path} ({target}): {why}")


def engine() -> Engine:
    """The database of a command that writes: created (with its schema) if it is not there."""
    from mailer.store.db import get_engine

    return get_engine(settings().database_url)


def read_engine() -> Engine:
    """The database of a command that only reads: one that is not there is an error, never a
    new empty file (run in the wrong folder, `mailer stats` would report nothing was sent)."""
    from mailer.store.db import get_existing_engine

    return get_existing_engine(settings().database_url)


# -- options that only mean something with another ----------------------------------------------
# An option such a rule watches defaults to None (its default applied after the check, and shown
# in --help with show_default=), so "given" is "not None" and a default is never mistaken for it.

class OptionMisuse(MailerError):
    """An option given where it has no meaning: refused before anything is done (exit 2, as
    click's own usage errors)."""

    exit_code = 2


def _given(value: object) -> bool:
    return value is not None and value is not False  # 0 is a value (`--weeks 0`: all)


def needs(flag: str, given: object, other: str, present: bool) -> None:
    """Refuse ``flag`` (its value ``given``: None or False when absent) without ``other``: a
    lone option would otherwise be dropped in silence, and the command do what was not asked."""
    if _given(given) and not present:
        raise OptionMisuse(f"{flag} needs {other}")


def not_with(flag: str, given: object, other: str, present: bool, why: str) -> None:
    """Refuse ``flag`` (its value ``given``) together with ``other`` (``present``), saying why."""
    if _given(given) and present:
        raise OptionMisuse(f"{flag} cannot be used with {other}: {why}")
