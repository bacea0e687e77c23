"""`mailer subscribers` commands: add, import, import-mailchimp, export, list, count, show, remove,
forget."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from mailer.cli._app import (app, console, counted, engine, err_console, examples, json_text, read_engine,
                             settings, shown, visible_controls)
from mailer.domain import SubscriberStatus

subscribers_app = typer.Typer(help="Readers: add, import, export, list, remove, forget.",
                              no_args_is_help=True,
                              epilog=examples("mailer subscribers add ann@example.org --confirmed",
                                              "mailer subscribers import readers.csv --confirmed",
                                              "mailer subscribers count"))
app.add_typer(subscribers_app, name="subscribers")

StatusOption = Annotated[Optional[SubscriberStatus],
                         typer.Option("--status", help="only subscribers in this state")]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]
INVALID_ROWS_SHOWN = 20


def _session():
    from mailer.store.db import session

    return session(engine())


def _read_session():
    """For list, count, show and export: they read, so a missing database is an error."""
    from mailer.store.db import session

    return session(read_engine())


def _print_json(value: object) -> None:
    sys.stdout.write(json_text(value) + "\n")


@subscribers_app.command("add", short_help="Add one address (pending, or active with --confirmed).",
                         epilog=examples("mailer subscribers add ann@example.org",
                                         "mailer subscribers add ann@example.org --confirmed"))
def add(
    email: str,
    confirmed: Annotated[bool, typer.Option(
        "--confirmed", help="they already consented: active now, no confirmation needed (a "
        "pending address is confirmed; one that left or bounced stays as it is)")] = False,
    allow_forgotten: Annotated[bool, typer.Option(
        "--allow-forgotten", help="add an address erased with `forget` (they asked again)")] = False,
) -> None:
    """Add one address. With --confirmed a pending address is confirmed; any other address
    already there is left as it is (exit 0): an unsubscribed or bounced one is never made
    active again here."""
    from mailer.subscriptions.workflow import AddOutcome, add_subscriber

    with _session() as db:
        subscriber, outcome = add_subscriber(db, email, confirmed=confirmed, source="cli",
                                             secret=settings().require_secret_key(),
                                             allow_forgotten=allow_forgotten)
    address = shown(subscriber.email)
    if outcome is AddOutcome.ADDED:
        note = "" if confirmed else " (no mail is sent: it stays pending until confirmed)"
        console.print(f"added {address} as {subscriber.status}{note}")
    elif outcome is AddOutcome.CONFIRMED:
        console.print(f"confirmed 1 pending reader: {address} is now active")
    else:
        console.print(f"{address} is already there ({subscriber.status}); nothing changed")


@subscribers_app.command("import", short_help="Import addresses from a CSV file; safe to run again.",
                         epilog=examples("mailer subscribers import readers.csv",
                                         "mailer subscribers import readers.csv --confirmed --json"))
def import_(
    file: Annotated[Path, typer.Argument(help="CSV with a header row and an 'email' column")],
    confirmed: Annotated[bool, typer.Option(
        "--confirmed", help="they already consented: import them as active, and confirm "
        "addresses here that are pending (never those who left or bounced)")] = False,
    as_json: JsonOption = False,
) -> None:
    """Import addresses from a CSV file; other columns are kept. Safe to run again."""
    from mailer.cli.progress import Progress
    from mailer.store.subscribers import import_csv

    progress = Progress("imported")  # its total comes from the import's own first pass
    try:
        with progress:
            report = import_csv(engine(), file, confirmed=confirmed, source="import",
                                secret=settings().require_secret_key(),
                                on_total=progress.set_total, on_rows=progress.advance)
    except KeyboardInterrupt:
        raise _interrupted(progress) from None
    if as_json:
        _print_json(report.as_dict())
        return
    confirmed_part = f"{report.confirmed:,} pending confirmed, " if confirmed else ""
    console.print(f"{counted(report.rows, 'row')}: {report.added:,} added, {confirmed_part}"
                  f"{report.existing:,} already there, "
                  f"{report.duplicates:,} repeated in the file, {len(report.forgotten):,} forgotten "
                  f"(skipped), {len(report.invalid):,} invalid", soft_wrap=True)
    for line, address in report.forgotten[:INVALID_ROWS_SHOWN]:
        console.print(f"  line {line}: {shown(address)} was forgotten at their request; skipped")
    for line, reason in report.invalid[:INVALID_ROWS_SHOWN]:
        console.print(f"  line {line}: {shown(reason)}", soft_wrap=True)
    hidden = len(report.invalid) - INVALID_ROWS_SHOWN
    if hidden > 0:
        console.print(f"  … and {hidden} more invalid rows (--json lists them all)")


@subscribers_app.command(
    "import-mailchimp", short_help="Move a Mailchimp audience over, consent and history included.",
    epilog=examples("mailer subscribers import-mailchimp audience.zip --dry-run",
                    "mailer subscribers import-mailchimp audience.zip",
                    "mailer subscribers import-mailchimp unpacked-export/ --json"))
def import_mailchimp(
    export: Annotated[Path, typer.Argument(
        help="Mailchimp's audience export: the .zip as downloaded, or the folder it unpacks to")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="print the same report and write nothing")] = False,
    as_json: JsonOption = False,
) -> None:
    """Move a Mailchimp audience over, consent and history included.

    subscribed → active (with the opt-in and confirm record), unsubscribed → unsubscribed,
    cleaned → bounced, nonsubscribed → skipped. Nobody is mailed or asked to confirm, and no
    address already here is made less restricted. Safe to run again."""
    from mailer.cli.progress import Progress
    from mailer.store.mailchimp_import import import_mailchimp as run_import

    progress = Progress("would import" if dry_run else "imported")
    try:
        with progress:
            report = run_import(engine(), export, secret=settings().require_secret_key(),
                                dry_run=dry_run, on_total=progress.set_total,
                                on_rows=progress.advance)
    except KeyboardInterrupt:
        raise _interrupted(progress, dry_run=dry_run) from None
    if as_json:
        _print_json(report.as_dict())
        return
    for line in mailchimp_report_lines(report, export):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _interrupted(progress, *, dry_run: bool = False) -> typer.Exit:
    """Ctrl-C: say how far it got (rows are committed chunk by chunk) and how to finish, as
    `send` does; exit 130 like any interrupted command."""
    of = f" of {progress.total:,}" if progress.total else ""
    then = ("nothing was written" if dry_run else
            "run the same command to finish (rows already imported are skipped)")
    err_console.print(f"interrupted: {progress.done:,}{of} rows done; {then}",
                      highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(130)


def mailchimp_report_lines(report, source: Path) -> list[str]:
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in report.kinds.items())
    lines = ["dry run: nothing is written; this is what the import would do"] \
        if report.dry_run else []
    lines.append(f"{source}: {counted(report.rows, 'row')} in {counted(len(report.files), 'file')} "
                 f"({kinds})")
    would = "would " if report.dry_run else ""
    lines.append(f"  {would}add{'' if would else 'ed'}: {_counts(report.added)}")
    if report.changed:
        lines.append(f"  {would}change{'' if would else 'd'}: {_counts(report.changed)}")
    lines.append(f"  already as the export says: {report.unchanged:,}")
    if report.kept:
        lines.append(f"  kept, stricter here than in the export: {_counts(report.kept)}")
    lines.append(f"  skipped: {report.nonsubscribed:,} nonsubscribed, {len(report.forgotten):,} "
                 f"forgotten at their request, {report.duplicates:,} repeated in the same file, "
                 f"{len(report.invalid):,} invalid")
    for two in report.in_two_files[:INVALID_ROWS_SHOWN]:
        lines.append(f"  {two.email} is in {two.first[0]} line {two.first[1]} and in "
                     f"{two.again[0]} line {two.again[1]}: the stricter one holds ({two.kept})")
    _more(lines, len(report.in_two_files), "addresses in two files")
    for file, line, address in report.forgotten[:INVALID_ROWS_SHOWN]:
        lines.append(f"  {file} line {line}: {address} was forgotten at their request; skipped")
    for file, line, reason in report.invalid[:INVALID_ROWS_SHOWN]:
        lines.append(f"  {file} line {line}: {reason}")
    _more(lines, len(report.invalid), "invalid rows")
    if not report.changed_anything:
        lines.append(f"nothing {'would change' if would else 'changed'}: mailer already holds "
                     "everything in this export")
    return lines


def _counts(counter) -> str:
    return ", ".join(f"{n:,} {what}" for what, n in counter.items()) or "none"


def _more(lines: list[str], total: int, what: str) -> None:
    if total > INVALID_ROWS_SHOWN:
        lines.append(f"  … and {total - INVALID_ROWS_SHOWN:,} more {what} (--json lists them all)")


@subscribers_app.command("export", short_help="Write subscribers to standard output (CSV or JSON).",
                         epilog=examples("mailer subscribers export > readers.csv",
                                         "mailer subscribers export --status active --format json"))
def export(
    status: StatusOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
) -> None:
    """Write subscribers to standard output (email, status, dates, source, attrs)."""
    from mailer.cli.progress import Progress
    from mailer.errors import MailerError
    from mailer.store.subscribers import export_subscribers

    if fmt not in ("csv", "json"):
        raise MailerError(f"unknown export format {fmt!r}: use csv or json")
    with _read_session() as db, Progress("exported", total=_export_total(db, status),
                                    unit="subscribers") as progress:
        rows = _counted(export_subscribers(db, status=status), progress)
        if fmt == "csv":
            _write_csv(rows)
        else:
            _write_json_array(rows)


def _export_total(db, status: SubscriberStatus | None) -> int:
    from mailer.reads.subscriber_figures import subscribers_by_status

    counts = subscribers_by_status(db)
    return counts[status.value] if status is not None else sum(counts.values())


def _counted(rows, progress):
    for row in rows:
        yield row
        progress.advance()


def _write_csv(rows) -> None:
    from mailer.store.subscribers import spreadsheet_safe

    columns = ["email", "status", "created_at", "confirmed_at", "source", "attrs"]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = {**row, "attrs": json.dumps(row["attrs"], ensure_ascii=False) if row["attrs"]
                 else ""}
        writer.writerow([spreadsheet_safe(str(cells[c] or "")) for c in columns])


def _write_json_array(rows) -> None:
    # Streamed element by element: the whole list never sits in memory.
    sys.stdout.write("[")
    for index, row in enumerate(rows):
        sys.stdout.write(("," if index else "") + "\n  " + json.dumps(row, ensure_ascii=False))
    sys.stdout.write("\n]\n")


@subscribers_app.command("list", short_help="Show subscribers, oldest first.",
                         epilog=examples("mailer subscribers list",
                                         "mailer subscribers list --status pending --limit 20"))
def list_(
    status: StatusOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show subscribers, oldest first."""
    from mailer.reads.subscriber_figures import list_subscribers

    with _read_session() as db:
        subscribers = list_subscribers(db, status=status, limit=limit)
    if as_json:
        _print_json([{"id": s.id, "email": s.email, "status": str(s.status),
                      "source": s.source, "created_at": s.created_at.isoformat(),
                      "updated_at": s.updated_at.isoformat()} for s in subscribers])
        return
    table = Table("id", "email", "status", "since", "source")
    for s in subscribers:
        # Text(), not markup: an address may contain "[" and must print as it is.
        table.add_row(str(s.id), Text(visible_controls(s.email)), str(s.status),
                      s.updated_at.strftime("%Y-%m-%d %H:%M"), Text(visible_controls(s.source or "")))
    console.print(table)


@subscribers_app.command("count", short_help="How many subscribers are in each state.",
                         epilog=examples("mailer subscribers count",
                                         "mailer subscribers count --json"))
def count(as_json: JsonOption = False) -> None:
    """How many subscribers are in each state."""
    from mailer.reads.quick_counts import subscribers_by_status_quickly

    counts = subscribers_by_status_quickly(settings().database_url)
    if counts is None:  # not a current SQLite file: the full path reads it, or says why not
        from mailer.reads.subscriber_figures import subscribers_by_status

        with _read_session() as db:
            counts = subscribers_by_status(db)
    if as_json:
        _print_json({**counts, "total": sum(counts.values())})
        return
    table = Table("status", "subscribers")
    for status, number in counts.items():
        table.add_row(status, str(number))
    table.add_row("total", str(sum(counts.values())), style="bold")
    console.print(table)


@subscribers_app.command("show", short_help="One subscriber and its consent record.",
                         epilog=examples("mailer subscribers show ann@example.org",
                                         "mailer subscribers show ann@example.org --json"))
def show(email: str, as_json: JsonOption = False) -> None:
    """One subscriber and the history of its changes (the consent record)."""
    from mailer.reads.subscriber_figures import history

    with _read_session() as db:
        subscriber, changes = history(db, email)
    record = [{"at": c.at.isoformat(), "from": c.from_status and str(c.from_status),
               "to": str(c.to_status), "source": c.source,
               "detail": json.loads(c.detail) if c.detail else None} for c in changes]
    if as_json:
        _print_json({"email": subscriber.email, "status": str(subscriber.status),
                     "changes": record})
        return
    console.print(Text(visible_controls(f"{subscriber.email}: {subscriber.status}")))
    table = Table("at", "from", "to", "source", "detail")
    for change in record:
        table.add_row(change["at"][:19], change["from"] or "-", change["to"],
                      Text(visible_controls(change["source"])),
                      Text(json_text(change["detail"], indent=None) if change["detail"] else ""))
    console.print(table)


@subscribers_app.command("remove", short_help="Unsubscribe an address.",
                         epilog=examples("mailer subscribers remove ann@example.org",
                                         "mailer subscribers remove Ann@Example.org   # any case"))
def remove(email: str) -> None:
    """Unsubscribe an address (bounced and complained ones stay suppressed)."""
    from mailer.subscriptions.workflow import remove_subscriber

    with _session() as db:
        subscriber = remove_subscriber(db, email, source="cli")
    console.print(f"{shown(subscriber.email)} is {subscriber.status}")


@subscribers_app.command("forget", short_help="Erase an address for good; it is never re-imported.",
                         epilog=examples("mailer subscribers forget ann@example.org",
                                         "mailer subscribers forget ann@example.org --yes"))
def forget(
    email: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Erase an address and its history; only a keyed hash stays, so it is never re-imported."""
    from mailer.store.subscribers import forget_subscriber, normalise_address

    secret = settings().require_secret_key()  # checks old-style hashes; fail before asking
    address = normalise_address(email)
    if not yes and not typer.confirm(f"Erase {address} and everything recorded about it?"):
        console.print(f"not erased: {shown(address)} is as it was", highlight=False)
        raise typer.Exit(1)
    with _session() as db:
        report = forget_subscriber(db, address, secret=secret)
    console.print(_forget_summary(report))


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _forget_summary(report) -> str:
    """What was there and what went: exit 0 either way, so these words are the only tell."""
    address = shown(report.email)
    if report.reader_status is None:
        found = f"no reader had {address}"
    else:
        found = (f"erased the reader {address} ({report.reader_status}), "
                 f"{_plural(report.history_rows, 'history row', 'history rows')} and "
                 f"{_plural(report.deliveries, 'delivery', 'deliveries')}")
    if report.events_redacted:
        found += (f"; {_plural(report.events_redacted, 'provider event', 'provider events')} "
                  "kept without the address")
    if report.already_forgotten:
        return f"{found}; it was already forgotten and is never added or imported again"
    return f"{found}; its hash is recorded so it is never added or imported again"
