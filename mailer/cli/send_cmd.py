"""`mailer send` and `mailer worker`: the main job.

``mailer send --issue 644`` renders the issue once, queues one ledger row per active reader and
sends at the lower of ``--rate`` / MAILER_SEND_RATE and the account's MaxSendRate. Running it
again resumes; a finished issue is not sent again without ``--again``. Safe under cron:
``mailer send --issue latest --yes --not-before 24h`` every hour sends each issue once, a day
after its date.
"""

from __future__ import annotations

import hashlib
import re
import signal
import sys
import threading
import time
from datetime import UTC, datetime, time as day_time, timedelta

import typer

from mailer.cli._app import app, console, engine, err_console, settings
from mailer.errors import IssueError, SendError

PLAIN_PROGRESS_EVERY = 10.0  # seconds between progress lines when stdout is not a terminal
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 3600, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# -- small helpers -----------------------------------------------------------------------------

def _out(message: str, **_: object) -> None:
    # soft_wrap: a line in a cron mail or a log must stay one line, whatever the width.
    console.print(message, highlight=False, soft_wrap=True)


def _err(message: str, **_: object) -> None:
    err_console.print(message, highlight=False, soft_wrap=True)


def parse_duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``1.5d``, ``3600s``; a bare number means hours."""
    match = _DURATION.match(text or "")
    if not match:
        raise SendError(f"--not-before: cannot read {text!r} as a duration (examples: 24h, 90m, 2d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def issue_moment(issue) -> datetime:  # noqa: ANN001 - a domain.Issue
    """When the issue was published: its Date header with time, else midnight UTC of its date."""
    if issue.published_at is not None:
        moment = issue.published_at
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if issue.date is not None:
        return datetime.combine(issue.date, day_time(0, 0), tzinfo=UTC)
    raise IssueError(f"issue {issue.number} has no date, so --not-before cannot be applied")


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _say_where_mail_goes(transport, s) -> None:  # noqa: ANN001 - Transport, Settings
    from mailer.transports import transport_notice

    notice = transport_notice(transport)
    if notice:
        _out(notice, highlight=False)
    elif transport.name == "outbox":
        _out(f"outbox transport: no mail leaves this machine; messages are written to "
                      f"{s.outbox_dir}/ (set MAILER_TRANSPORT=ses to send for real)")


# -- the command -------------------------------------------------------------------------------

@app.command("send")
def send(
    issue: str = typer.Option(..., "--issue", help="Issue number, or 'latest'."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Render and count the audience; send nothing."),
    to: str | None = typer.Option(None, "--to", help="Send one test copy to ADDRESS, outside the campaign."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Send at most N (a canary), then stop; resumable."),
    rate: float | None = typer.Option(None, "--rate", min=0.01, help="Messages per second (default MAILER_SEND_RATE)."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, max=256, help="Messages in flight at once."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    resend_unknown: bool = typer.Option(False, "--resend-unknown", help="Re-send rows whose fate is unknown after a crash (may make a second copy)."),
    not_before: str | None = typer.Option(None, "--not-before", help="Wait this long after the issue's date, e.g. 24h; before that, exit 0 without sending."),
    again: bool = typer.Option(False, "--again", help="Send an already finished issue again, as a new campaign."),
    preview_to: str | None = typer.Option(None, "--preview-to", help="Mail each issue once to the editors at ADDRESS when first found (default MAILER_PREVIEW_TO)."),
) -> None:
    """Send an issue to every confirmed reader: resumable, at the account's rate, never twice."""
    from mailer.sources import load_issue_from_source
    from mailer.store import ledger

    s = settings()
    the_issue = load_issue_from_source(s, issue)
    number = the_issue.number
    if number is None:
        raise IssueError(f"issue {issue} has no number")
    if (preview_to or s.preview_to) and not to and not dry_run:
        from mailer.preview import preview_once

        if note := preview_once(engine(), s, the_issue, preview_to or s.preview_to):
            _out(note)
    if not_before is not None and not to and not dry_run:
        due = issue_moment(the_issue) + parse_duration(not_before)
        now = datetime.now(UTC)
        if now < due:
            _out(f"issue {number} is not due yet: it will be sent after "
                          f"{due:%Y-%m-%d %H:%M} UTC (in {_fmt_duration((due - now).total_seconds())}); "
                          "nothing sent")
            return

    db = engine()
    last = ledger.latest_campaign(db, number)
    if (not to and not dry_run and not again and last is not None
            and last.status == "finished"
            and not (resend_unknown and unknown_count(db, last.id))):
        print_already_sent(db, last)
        return

    rendered = _render(the_issue, s)
    transport = _open_transport(s, concurrency)
    try:
        quota = transport.preflight()
        from mailer.dispatch import effective_rate

        send_rate = effective_rate(rate or s.send_rate, quota)
        _say_where_mail_goes(transport, s)
        if to and dry_run:
            _out(f"dry run: a test copy would go to {to}; nothing sent")
            return
        if to:
            _send_test(to, rendered, transport, s, number)
            return
        open_campaign = last if last is not None and last.status != "finished" else None
        if resend_unknown and last is not None and last.status == "finished":
            open_campaign = last
        audience = (remaining(db, open_campaign.id, resend_unknown)
                    if open_campaign is not None and not again else ledger.audience_size(db))
        print_plan(rendered, the_issue, audience, transport.name, send_rate,
                               quota, resuming=open_campaign is not None and not again)
        if dry_run:
            _out("dry run: nothing sent")
            return
        if audience == 0 and (open_campaign is None or again):
            _out("no confirmed readers: nothing to send (no campaign created)")
            return
        _confirm(yes)
        start = ledger.begin_campaign(db, issue_number=number, subject=rendered.subject,
                                      transport=transport.name,
                                      content_sha256=_sha256(rendered.html), again=again)
        campaign = start.campaign
        if not start.created and campaign.status == "finished" and not resend_unknown:
            print_already_sent(db, campaign)  # another run finished it meanwhile
            return
        _prepare_resume(db, campaign, rendered, start.created, resend_unknown)
        report = _run(db, transport, rendered, s, campaign.id, number, send_rate, quota,
                      concurrency or s.send_concurrency, limit)
    finally:
        transport.close()
    print_summary(db, report)
    raise typer.Exit(exit_code(report))


@app.command("worker")
def worker(
    campaign_id: int | None = typer.Option(None, "--campaign", help="Campaign id (default: the one being sent)."),
    rate: float | None = typer.Option(None, "--rate", min=0.01, help="Messages per second for the whole campaign."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, max=256),
) -> None:
    """Join a campaign that is being sent (another machine sharing a PostgreSQL ledger)."""
    from mailer.dispatch import effective_rate
    from mailer.sources import load_issue_from_source
    from mailer.store import ledger

    s = settings()
    db = engine()
    campaign = _pick_open_campaign(db, campaign_id)
    if campaign is None:
        _out("no campaign is being sent: nothing to do")
        return
    the_issue = load_issue_from_source(s, campaign.issue_number)
    rendered = _render(the_issue, s)
    if _sha256(rendered.html) != campaign.content_sha256:
        _err(f"warning: issue {campaign.issue_number} renders differently here than "
                          "where the campaign started (edited file or different templates?)")
    transport = _open_transport(s, concurrency)
    try:
        quota = transport.preflight()
        _say_where_mail_goes(transport, s)
        recovery = ledger.recover_abandoned(db, campaign.id)
        print_recovery(db, campaign.id, recovery)
        report = _run(db, transport, rendered, s, campaign.id, campaign.issue_number,
                      effective_rate(rate or s.send_rate, quota), quota,
                      concurrency or s.send_concurrency, None)
    finally:
        transport.close()
    print_summary(db, report)
    raise typer.Exit(exit_code(report))


# -- steps -------------------------------------------------------------------------------------

def _render(the_issue, s):  # noqa: ANN001, ANN202
    from mailer.render import RenderOptions, render_issue

    rendered = render_issue(the_issue, RenderOptions.from_settings(s))
    for warning in getattr(rendered, "warnings", ()) or ():
        _err(f"warning: {warning}", highlight=False)
    return rendered


def _open_transport(s, concurrency: int | None):  # noqa: ANN001, ANN202
    from mailer.transports import get_transport

    # One pooled connection per sender thread, plus a few for preflight.
    return get_transport(s, max_connections=(concurrency or s.send_concurrency) + 4)


def _confirm(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise SendError("not sending: no terminal to confirm on; pass --yes to send without asking")
    if not typer.confirm("Send now?", default=False):
        raise typer.Exit(1)


def _pick_open_campaign(db, campaign_id):  # noqa: ANN001, ANN202
    from mailer.store import ledger

    if campaign_id is not None:
        campaign = ledger.get_campaign(db, campaign_id)
        if campaign is None:
            raise SendError(f"there is no campaign {campaign_id}")
        if campaign.status != "sending":
            raise SendError(f"campaign {campaign_id} is {campaign.status}, not being sent; "
                            f"resume it with `mailer send --issue {campaign.issue_number}`")
        return campaign
    campaigns = ledger.open_campaigns(db)
    if len(campaigns) > 1:
        ids = ", ".join(str(c.id) for c in campaigns)
        raise SendError(f"several campaigns are being sent ({ids}); pick one with --campaign")
    return campaigns[0] if campaigns else None


def _prepare_resume(db, campaign, rendered, created: bool, resend_unknown: bool) -> None:  # noqa: ANN001
    from mailer.store import ledger

    if created:
        _out(f"campaign {campaign.id} started for issue {campaign.issue_number}")
        return
    _out(f"resuming campaign {campaign.id} (issue {campaign.issue_number}, "
                  f"{campaign.status}{': ' + campaign.note if campaign.note else ''})")
    recovery = ledger.recover_abandoned(db, campaign.id)
    print_recovery(db, campaign.id, recovery, resend_unknown=resend_unknown)
    if resend_unknown:
        requeued = ledger.requeue_unknown(db, campaign.id)
        if requeued:
            _out(f"re-sending {requeued} deliveries whose fate was unknown (--resend-unknown)")
    sha = _sha256(rendered.html)
    if sha != campaign.content_sha256:
        _err("warning: the issue changed since this campaign started; the readers "
                          "still waiting get the new version")
    ledger.resume_campaign(db, campaign.id, content_sha256=sha)


def _send_test(address: str, rendered, transport, s, number: int) -> None:  # noqa: ANN001
    from mailer.dispatch import MessageComposer
    from mailer.store.db import session
    from mailer.store.subscribers import get_by_email, normalise_address

    clean = normalise_address(address)
    with session(engine()) as db_session:
        subscriber = get_by_email(db_session, clean)
    composer = MessageComposer(rendered, s, campaign_id="test", issue_number=number)
    provider_id = transport.send(composer.compose_test(clean, subscriber.id if subscriber else None))
    _out(f"test copy of issue {number} sent to {clean} (message id {provider_id}); "
                  "no campaign was started")


def _run(db, transport, rendered, s, campaign_id: int, number: int, send_rate: float, quota,  # noqa: ANN001, PLR0913
         concurrency: int, limit: int | None):
    from mailer.dispatch import Dispatcher, MessageComposer, SendOptions

    composer = MessageComposer(rendered, s, campaign_id=campaign_id, issue_number=number)
    dispatcher = Dispatcher(db, transport, composer, campaign_id,
                            SendOptions(rate=send_rate, concurrency=concurrency, limit=limit),
                            quota=quota)
    total = remaining(db, campaign_id, False)
    if limit is not None:
        total = min(total, limit)
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["report"] = dispatcher.run()
        except BaseException as error:  # re-raised in the main thread
            outcome["error"] = error

    restore = _install_signal_handlers(dispatcher)
    thread = threading.Thread(target=target, name="mailer-dispatch")
    try:
        thread.start()
        follow(dispatcher, thread, total, plain_every=PLAIN_PROGRESS_EVERY)
    finally:
        thread.join()
        restore()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["report"]


def _install_signal_handlers(dispatcher):  # noqa: ANN001, ANN202
    """First SIGINT / SIGTERM: finish the messages in flight and stop. A second SIGINT aborts."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, _frame) -> None:  # noqa: ANN001
        name = signal.Signals(signum).name
        if dispatcher.stopping and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        dispatcher.stop(f"interrupted by {name}")
        _err(f"{name}: finishing the messages in flight, then stopping "
                          "(Ctrl-C again to abort at once)")

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


# -- what the operator sees --------------------------------------------------------------------

def unknown_count(db, campaign_id: int) -> int:  # noqa: ANN001
    from mailer.domain import DeliveryStatus
    from mailer.store import ledger

    return ledger.count_by_status(db, campaign_id)[DeliveryStatus.UNKNOWN]


def remaining(db, campaign_id: int, include_unknown: bool) -> int:  # noqa: ANN001
    from mailer.domain import DeliveryStatus
    from mailer.store import ledger

    counts = ledger.count_by_status(db, campaign_id)
    left = counts[DeliveryStatus.QUEUED] + counts[DeliveryStatus.SENDING]
    return left + (counts[DeliveryStatus.UNKNOWN] if include_unknown else 0)


def print_already_sent(db, campaign) -> None:  # noqa: ANN001
    from mailer.domain import DeliveryStatus
    from mailer.store import ledger

    counts = ledger.count_by_status(db, campaign.id)
    when = f" on {campaign.finished_at:%Y-%m-%d %H:%M} UTC" if campaign.finished_at else ""
    line = (f"issue {campaign.issue_number} was already sent{when} (campaign {campaign.id}: "
            f"{counts[DeliveryStatus.SENT]} sent, {counts[DeliveryStatus.FAILED]} failed, "
            f"{counts[DeliveryStatus.SKIPPED]} skipped); nothing to do. Pass --again to send "
            "it again")
    if counts[DeliveryStatus.UNKNOWN]:
        line += (f"; {counts[DeliveryStatus.UNKNOWN]} deliveries are unknown (in flight during a "
                 "crash): pass --resend-unknown to send them again")
    _out(line, highlight=False)


def print_plan(rendered, the_issue, audience: int, transport_name: str, send_rate: float,  # noqa: ANN001
               quota, *, resuming: bool) -> None:
    reader = "reader" if audience == 1 else "readers"
    who = f"{reader} still waiting" if resuming else f"confirmed {reader}"
    _out(f"issue {the_issue.number}: {rendered.subject}", highlight=False)
    _out(f"  audience:  {audience} {who}", highlight=False)
    _out(f"  transport: {transport_name}, {send_rate:g} messages/s", highlight=False)
    if quota is not None and quota.remaining_24h is not None:
        _out(f"  24-hour quota left: {quota.remaining_24h:g}", highlight=False)
        if quota.remaining_24h < audience:
            _err(f"warning: the quota runs out after {quota.remaining_24h:g} "
                              "messages; the send will stop there and resume later")
    if audience and send_rate:
        _out(f"  takes about {_fmt_duration(audience / send_rate)}", highlight=False)


def print_recovery(db, campaign_id: int, recovery, *, resend_unknown: bool = False) -> None:  # noqa: ANN001
    if recovery.released:
        _out(f"{recovery.released} rows leased by a stopped worker are back in the queue")
    unknown = unknown_count(db, campaign_id)
    if unknown and not resend_unknown:
        _err(f"warning: {unknown} deliveries are unknown: they were in flight when a "
                          "send died, so they may or may not have arrived. They are not re-sent; "
                          "pass --resend-unknown to send them again (risking a second copy)")


def _progress_line(dispatcher, total: int) -> str:  # noqa: ANN001
    p = dispatcher.progress
    rate = p.rate()
    left = max(0, total - p.done)
    eta = _fmt_duration(left / rate) if rate > 0 and left else "-"
    return (f"sent {p.sent}/{total}  failed {p.failed}  skipped {p.skipped}  "
            f"{rate:.1f}/s  ETA {eta}")


def follow(dispatcher, thread: threading.Thread, total: int, *, plain_every: float) -> None:  # noqa: ANN001
    """Show progress until the dispatch thread ends: a rich bar on a terminal, else a plain
    line every ``plain_every`` seconds (cron mail and log files stay readable)."""
    if console.is_terminal:
        _follow_with_bar(dispatcher, thread, total)
        return
    last = time.monotonic()
    while thread.is_alive():
        thread.join(0.25)
        if time.monotonic() - last >= plain_every:
            _out(_progress_line(dispatcher, total), highlight=False)
            last = time.monotonic()


def _follow_with_bar(dispatcher, thread: threading.Thread, total: int) -> None:  # noqa: ANN001
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("[bold]sending"), BarColumn(), TextColumn("{task.description}"),
                  console=console, transient=False) as bar:
        task = bar.add_task(_progress_line(dispatcher, total), total=total or 1)
        while thread.is_alive():
            thread.join(0.2)
            bar.update(task, completed=dispatcher.progress.done,
                       description=_progress_line(dispatcher, total))


def print_summary(db, report) -> None:  # noqa: ANN001
    from mailer.domain import DeliveryStatus
    from mailer.store import ledger

    counts = ledger.count_by_status(db, report.campaign_id)
    rate = report.sent / report.elapsed if report.elapsed > 0 else 0.0
    _out(f"this run: {report.sent} sent, {report.failed} failed, {report.skipped} skipped "
                  f"(unsubscribed meanwhile), {report.throttled} throttled and retried, in "
                  f"{_fmt_duration(report.elapsed)} ({rate:.1f}/s)", highlight=False)
    waiting = counts[DeliveryStatus.QUEUED] + counts[DeliveryStatus.SENDING]
    _out(f"campaign {report.campaign_id}: {counts[DeliveryStatus.SENT]} sent, "
                  f"{counts[DeliveryStatus.FAILED]} failed, {counts[DeliveryStatus.SKIPPED]} "
                  f"skipped, {waiting} waiting, {counts[DeliveryStatus.UNKNOWN]} unknown",
                  highlight=False)
    for address, reason in ledger.failures(db, report.campaign_id, limit=5):
        _err(f"  failed: {address}: {reason}", highlight=False)
    if report.finished:
        _out(f"campaign {report.campaign_id} finished")
    elif report.stop_reason:
        _err(f"stopped: {report.stop_reason}. State is saved: run the same "
                          "`mailer send` command again to resume", highlight=False)


def exit_code(report) -> int:  # noqa: ANN001
    if report.account_error or report.failed:
        return 1
    if report.stop_reason and report.stop_reason.startswith("interrupted"):
        return 130
    return 0
