"""`mailer doctor --live`: send to the SES mailbox simulator, wait for the events SES sends back
(mailer.doctor.live), and print one verdict per expected event."""

from __future__ import annotations

from mailer.cli._app import console, counted, read_engine, shown
from mailer.config import Settings
from mailer.doctor import run_checks
from mailer.doctor.live import likeliest_cause, send_probes, verdict, wait_for_events
from mailer.errors import MailerError

STYLE = {"ok": "green", "late": "yellow", "missing": "bold red"}


def run_live(settings: Settings, *, wait: float, late_after: float) -> int:
    """Send the probes, wait for their events, print one line each; the exit code."""
    if settings.transport != "ses":
        raise MailerError(f"--live sends through SES, but MAILER_TRANSPORT is "
                          f"{settings.transport!r}: set MAILER_TRANSPORT=ses")
    database = read_engine()  # a database problem (or none there) shows before anything is sent
    probes = send_probes(settings)
    console.print(f"sent {counted(len(probes), 'message')} to the SES mailbox simulator; waiting up to "
                  f"{wait:g} s for their events", highlight=False)
    arrived = wait_for_events(database, probes, wait)
    verdicts = [(probe, kind, verdict(arrived.get((probe.message_id, kind.value)), late_after))
                for probe in probes for kind in probe.expected]
    for probe, kind, outcome in verdicts:
        seen = arrived.get((probe.message_id, kind.value))
        after = f" after {seen:.0f} s" if seen is not None else ""
        console.print(f"[{STYLE[outcome]}]{outcome:<7}[/] {shown(kind.value)} for "
                      f"{shown(probe.address)}{after}", highlight=False, soft_wrap=True)
    if any(outcome == "missing" for *_, outcome in verdicts):
        console.print(f"likeliest cause: {shown(_cause(settings))}", highlight=False,
                      soft_wrap=True)
        return 1
    return 0


def _cause(settings: Settings) -> str:
    try:
        return likeliest_cause(run_checks(settings))
    except Exception as error:
        return f"cannot read the SES set-up to tell ({type(error).__name__})"
