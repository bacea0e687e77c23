"""`mailer doctor`: checks the SES side before a send."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from mailer.cli._app import app, console, counted, examples, needs, not_with, settings, shown
from mailer.doctor import Check, run_checks

STYLE = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}
LIVE_WAIT = 300.0  # --wait when not given: seconds
LIVE_LATE_AFTER = 60.0  # --late-after when not given: seconds

DOCTOR_HELP = """\
Check the SES side before a send, one line per check (ok / warn / FAIL), and say what is missing:
the web app's secret, the sender identity and its DKIM, the configuration set
(MAILER_SES_CONFIGURATION_SET) with an SNS event destination for Bounce, Complaint, Delivery
and Send (Send events settle readers whose SES answer was lost), the SNS topic with a confirmed HTTPS subscription to MAILER_BASE_URL/webhooks/ses (raw delivery
off), the topic on MAILER_SNS_TOPIC_ARNS, and the account's quota and enforcement status.

Reads only; changes nothing (a missing SQLite database is a warning, never created). Uses
MAILER_SES_ENDPOINT_URL for SES and SNS when set.
Exits 1 when a check FAILs. --json prints {"ok": bool, "checks": [{"name", "status", "message"}]}.

--live instead proves the whole loop: one message to each SES mailbox simulator address
(success, bounce, complaint, suppressionlist, ooto @simulator.amazonses.com) through the
configuration set, then it waits up to --wait seconds for their Delivery, Bounce and Complaint
events to reach mailer's database (through the web hook, the SQS poller or a replay) and reports
each as ok, late (after --late-after seconds) or missing, with the likeliest cause. Exits 1 when
one is missing. Simulator events never suppress anyone and never count in an issue's stats.
"""


def _print(check: Check) -> None:
    status = f"[{STYLE[check.status]}]{check.status:<4}[/]"
    console.print(f"{status}  {shown(check.name)}: {shown(check.message)}", highlight=False,
                  soft_wrap=True)


def database_check(url: str) -> Check:
    """Is the SQLite file there? Looked for, never created: the doctor changes nothing."""
    from mailer.store.db import missing_sqlite_file

    missing = missing_sqlite_file(url)
    if missing is not None:
        return Check("database", "warn",
                     f"no database at {missing} (MAILER_DATABASE_URL): a send from here would "
                     "start an empty one; run mailer in the folder that has it, or `mailer db "
                     "upgrade` to create one")
    return Check("database", "ok", "MAILER_DATABASE_URL names an existing database"
                 if url.startswith("sqlite") else "MAILER_DATABASE_URL is not SQLite (not opened)")


@app.command("doctor", help=DOCTOR_HELP, short_help="Check that the SES side is ready for a send.",
             epilog=examples("mailer doctor", "mailer doctor --json | jq .ok"))
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
    live: Annotated[bool, typer.Option("--live", help="send to the SES mailbox simulator and "
                                                      "wait for the events")] = False,
    wait: Annotated[float | None, typer.Option("--wait", min=1, show_default=False,
                                               help=f"with --live: seconds to wait for the "
                                               f"events (default {LIVE_WAIT:g})")] = None,
    late_after: Annotated[float | None, typer.Option("--late-after", min=0,
                                                     show_default=False,
                                                     help="with --live: an event later than "
                                                     f"this is 'late' (default "
                                                     f"{LIVE_LATE_AFTER:g})")] = None,
) -> None:
    # an option of --live alone is refused, not ignored: `doctor --wait 5` ran the plain checks
    needs("--wait", wait, "--live", live)
    needs("--late-after", late_after, "--live", live)
    not_with("--json", as_json, "--live", live, "--live prints one line per event, not JSON")
    if live:
        from mailer.cli.doctor_live import run_live

        raise typer.Exit(run_live(settings(), wait=LIVE_WAIT if wait is None else wait,
                                  late_after=LIVE_LATE_AFTER if late_after is None
                                  else late_after))
    checks = [*run_checks(settings()), database_check(settings().database_url)]
    failed = any(check.status == "FAIL" for check in checks)
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for check in checks:
            _print(check)
        fails = sum(check.status == "FAIL" for check in checks)
        warns = sum(check.status == "warn" for check in checks)
        console.print(f"{fails} failed, {counted(warns, 'warning')}, "
                      f"{len(checks) - fails - warns} ok", highlight=False)
    if failed:
        raise typer.Exit(1)
