"""`mailer doctor --live`: send to the SES mailbox simulator, then watch mailer's database for
the events SES sends back (the entry point joins the transport with the store)."""

from __future__ import annotations

import time

from sqlmodel import select

from mailer.cli._app import console, engine, shown
from mailer.config import Settings
from mailer.errors import MailerError
from mailer.store.db import session
from mailer.store.models import DeliveryEventRecord
from mailer.transports.ses_live import Probe, likeliest_cause, send_probes

POLL_SECONDS = 1.0
STYLE = {"ok": "green", "late": "yellow", "missing": "bold red"}


def run_live(settings: Settings, *, wait: float, late_after: float) -> int:
    """Send the probes, wait for their events, print one line each; the exit code."""
    if settings.transport != "ses":
        raise MailerError(f"--live sends through SES, but MAILER_TRANSPORT is "
                          f"{settings.transport!r}: set MAILER_TRANSPORT=ses")
    from mailer.transports import get_transport

    database = engine()  # a database problem shows before anything is sent
    probes = send_probes(get_transport(settings, max_connections=2), settings)
    console.print(f"sent {len(probes)} messages to the SES mailbox simulator; waiting up to "
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


def verdict(seconds: float | None, late_after: float) -> str:
    if seconds is None:
        return "missing"
    return "ok" if seconds <= late_after else "late"


def wait_for_events(database, probes: list[Probe], wait: float) -> dict[tuple[str, str], float]:
    """(message id, kind) → seconds after the send when it was first seen in the database."""
    expected = {(p.message_id, k.value) for p in probes for k in p.expected}
    ids = [p.message_id for p in probes]
    started = time.monotonic()
    arrived: dict[tuple[str, str], float] = {}
    while True:
        elapsed = time.monotonic() - started
        with session(database) as db:
            rows = db.exec(select(DeliveryEventRecord.provider_message_id,
                                  DeliveryEventRecord.kind)
                           .where(DeliveryEventRecord.provider_message_id.in_(ids))).all()
        for message_id, kind in rows:
            arrived.setdefault((message_id, kind), elapsed)
        if expected <= arrived.keys() or elapsed >= wait:
            return arrived
        time.sleep(min(POLL_SECONDS, max(0.0, wait - elapsed)))


def _cause(settings: Settings) -> str:
    from mailer.transports.ses_doctor import run_checks

    try:
        return likeliest_cause(run_checks(settings))
    except Exception as error:
        return f"cannot read the SES set-up to tell ({type(error).__name__})"
