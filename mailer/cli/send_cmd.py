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
from datetime import UTC, datetime, time as day_time, timedelta

import typer

from mailer.cli._app import app, engine, examples, settings
from mailer.cli.send_output import (
    _err,
    _fmt_duration,
    _out,
    PAUSED_EXIT,
    exit_code,
    follow,
    print_paused,
    print_already_sent,
    print_plan,
    print_recovery,
    print_summary,
    remaining,
    unknown_count,
)
from mailer.errors import IssueError, SendError

PLAIN_PROGRESS_EVERY = 10.0  # seconds between progress lines when stdout is not a terminal
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 3600, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# -- small helpers -----------------------------------------------------------------------------

def parse_duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``1.5d``, ``3600s``; a bare number means hours."""
    match = _DURATION.match(text or "")
    if not match:
        raise SendError(f"--not-before: cannot read {text!r} as a duration (examples: 24h, 90m, 2d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def issue_moment(issue) -> datetime:
    """When the issue was published: its Date header with time, else midnight UTC of its date."""
    if issue.published_at is not None:
        moment = issue.published_at
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if issue.date is not None:
        return datetime.combine(issue.date, day_time(0, 0), tzinfo=UTC)
    raise IssueError(f"issue {issue.number} has no date, so --not-before cannot be applied")




def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _say_where_mail_goes(transport, s) -> None:
    from mailer.transports import transport_notice

    notice = transport_notice(transport)
    if notice:
        _out(notice, highlight=False)
    elif transport.name == "outbox":
        _out(f"outbox transport: no mail leaves this machine; messages are written to "
                      f"{s.outbox_dir}/ (set MAILER_TRANSPORT=ses to send for real)")


# -- the command -------------------------------------------------------------------------------

@app.command("send", short_help="Send an issue to every confirmed reader, exactly once.",
             epilog=examples(
                 "mailer send --issue 644 --dry-run          # count readers, send nothing",
                 "mailer send --issue 644 --to you@example.org   # one test copy",
                 "mailer send --issue latest --yes --not-before 24h   # hourly cron"))
def send(
    issue: str = typer.Option(..., "--issue", help="Issue number, or 'latest'."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Render and count the audience; send nothing."),
    to: str | None = typer.Option(None, "--to", help="Send one test copy to ADDRESS, outside the campaign."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Send at most N now, then stop; run the same command to continue."),
    rate: float | None = typer.Option(None, "--rate", min=0.01, help="Messages per second; can only lower the SES account's MaxSendRate (default: that rate; SMTP/outbox: MAILER_SEND_RATE)."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, max=256, help="Messages in flight at once (default: sized from the rate and the observed latency)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    resend_unknown: bool = typer.Option(False, "--resend-unknown", help="Re-send rows whose fate is unknown (answer lost, or in flight during a crash); may make a second copy."),
    not_before: str | None = typer.Option(None, "--not-before", help="Wait this long after the issue's date, e.g. 24h; before that, exit 0 without sending."),
    again: bool = typer.Option(False, "--again", help="Send an already finished issue again, as a new campaign."),
    resume: bool = typer.Option(False, "--resume", help="Go on with a campaign the reputation breaker paused, after your review."),
    canary: str | None = typer.Option(None, "--canary", help="First send to a random sample (2% or a number of readers), wait for its events, go on only if they hold."),
    canary_wait: str = typer.Option("20m", "--canary-wait", help="How long to wait for the canary's events, e.g. 20m."),
    preview_to: str | None = typer.Option(None, "--preview-to", help="Mail each issue once to the editors at ADDRESS when first found (default MAILER_PREVIEW_TO)."),
) -> None:
    """Send an issue to every confirmed reader: resumable, at the account's rate, never twice.

    Exit codes: 0 done or nothing to do; 1 readers failed or the provider stopped the send; 3
    paused by the reputation breaker (review, then --resume); 130 interrupted.
    """
    from mailer.sources import load_issue_from_source
    from mailer.store import ledger

    s = settings()
    if not dry_run:
        s.require_secret_key()  # before anything: links signed with no real key fail for all
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
    if last is not None and last.status == "paused" and not resume and not to and not dry_run:
        print_paused(last)
        raise typer.Exit(PAUSED_EXIT)
    if again and not to and last is not None and last.status != "finished":
        # --again starts a new campaign for everyone; an unfinished one would be resumed
        # instead, and the plan would not match what is sent.
        raise SendError(f"--again: campaign {last.id} of issue {number} is {last.status}, not "
                        f"finished ({remaining(db, last.id, False)} readers still waiting); "
                        f"run `mailer send --issue {number}` without --again to resume it")

    rendered = _render(the_issue, s)
    threads, sized = _concurrency(s, concurrency)
    transport = _open_transport(s, threads)
    try:
        quota = transport.preflight()
        send_rate, rate_source = _rate(s, rate, quota)
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
                   quota, resuming=open_campaign is not None and not again,
                   rate_source=rate_source, in_flight=None if sized else threads)
        if dry_run:
            _out("dry run: nothing sent")
            return
        sample = None
        if canary is not None and (open_campaign is None or again):
            from mailer.cli.canary import canary_size

            sample = canary_size(canary, audience)
            _out(f"  canary:    {sample} readers at random first, then "
                 f"{_fmt_duration(parse_duration(canary_wait).total_seconds())} for their events")
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
        if sample and start.created:
            ledger.choose_canary(db, campaign.id, sample)
        run = (db, transport, rendered, s, campaign.id, number, send_rate, quota,
               (threads, sized))
        report = _canary_phase(run, parse_duration(canary_wait))
        if report is None:
            report = _run(*run, limit)
    finally:
        transport.close()
    print_summary(db, report)
    raise typer.Exit(exit_code(report))


@app.command("worker", short_help="Join a send from another machine (PostgreSQL).",
             epilog=examples("mailer worker", "mailer worker --campaign 3 --rate 5"))
def worker(
    campaign_id: int | None = typer.Option(None, "--campaign", help="Campaign id (default: the one being sent)."),
    rate: float | None = typer.Option(None, "--rate", min=0.01, help="Messages per second for the whole campaign."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, max=256),
) -> None:
    """Join a campaign that is being sent (another machine sharing a PostgreSQL ledger)."""
    from mailer.sources import load_issue_from_source
    from mailer.store import ledger

    s = settings()
    s.require_secret_key()
    db = engine()
    campaign = _pick_open_campaign(db, campaign_id)
    if campaign is None:
        _out("no campaign is being sent: nothing to do")
        return
    the_issue = load_issue_from_source(s, campaign.issue_number)
    rendered = _render(the_issue, s)
    if _sha256(rendered.html) != campaign.content_sha256:
        # Joining would send readers two versions of one campaign. The send process owns the
        # version: `mailer send` resumes with the new one for everyone still waiting.
        raise SendError(f"issue {campaign.issue_number} renders differently here than where "
                        f"campaign {campaign.id} started (edited file or different templates?); "
                        "not joining. Use the same files here, or stop the send and run "
                        f"`mailer send --issue {campaign.issue_number}` to go on with the new "
                        "version")
    threads, sized = _concurrency(s, concurrency)
    transport = _open_transport(s, threads)
    try:
        quota = transport.preflight()
        _say_where_mail_goes(transport, s)
        recovery = ledger.recover_abandoned(db, campaign.id)
        print_recovery(db, campaign.id, recovery)
        report = _run(db, transport, rendered, s, campaign.id, campaign.issue_number,
                      _rate(s, rate, quota)[0], quota, (threads, sized), None)
    finally:
        transport.close()
    print_summary(db, report)
    raise typer.Exit(exit_code(report))


# -- steps -------------------------------------------------------------------------------------

def _render(the_issue, s):
    from mailer.render import RenderOptions, render_issue

    rendered = render_issue(the_issue, RenderOptions.from_settings(s))
    for warning in getattr(rendered, "warnings", ()) or ():
        _err(f"warning: {warning}", highlight=False)
    return rendered


def _open_transport(s, threads: int):
    from mailer.transports import get_transport

    # One pooled connection per sender thread, plus a few for preflight.
    return get_transport(s, max_connections=threads + 4)


def _explicit(s, name: str):
    """A setting's value when the operator set it (environment or .env), else None."""
    return getattr(s, name) if name in s.model_fields_set else None


def _rate(s, requested: float | None, quota) -> tuple[float, str]:
    from mailer.dispatch import choose_rate

    return choose_rate(quota, requested=requested, configured=_explicit(s, "send_rate"),
                       default=s.send_rate)


def _concurrency(s, requested: int | None) -> tuple[int, bool]:
    from mailer.dispatch import choose_concurrency

    return choose_concurrency(requested, _explicit(s, "send_concurrency"))


def _confirm(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise SendError("not sending: no terminal to confirm on; pass --yes to send without asking")
    if not typer.confirm("Send now?", default=False):
        raise typer.Exit(1)


def _pick_open_campaign(db, campaign_id):
    from mailer.store import ledger

    if campaign_id is not None:
        campaign = ledger.get_campaign(db, campaign_id)
        if campaign is None:
            raise SendError(f"there is no campaign {campaign_id}")
        if campaign.status != "sending":
            how = " --resume" if campaign.status == "paused" else ""
            raise SendError(f"campaign {campaign_id} is {campaign.status}, not being sent; "
                            f"resume it with `mailer send --issue {campaign.issue_number}{how}`")
        return campaign
    campaigns = ledger.open_campaigns(db)
    if len(campaigns) > 1:
        ids = ", ".join(str(c.id) for c in campaigns)
        raise SendError(f"several campaigns are being sent ({ids}); pick one with --campaign")
    return campaigns[0] if campaigns else None


def _prepare_resume(db, campaign, rendered, created: bool, resend_unknown: bool) -> None:
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


def _send_test(address: str, rendered, transport, s, number: int) -> None:
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


def _run(db, transport, rendered, s, campaign_id: int, number: int, send_rate: float, quota,
         concurrency: tuple[int, bool], limit: int | None, *, canary_only: bool = False):
    from mailer.dispatch import Dispatcher, MessageComposer, SendOptions

    composer = MessageComposer(rendered, s, campaign_id=campaign_id, issue_number=number)
    from mailer.breaker import Thresholds

    threads, sized = concurrency
    options = SendOptions(rate=send_rate, concurrency=threads, size_concurrency=sized,
                          limit=limit, breaker=Thresholds.from_settings(s),
                          breaker_interval=s.breaker_interval, canary_only=canary_only)
    dispatcher = Dispatcher(db, transport, composer, campaign_id, options, quota=quota)
    from mailer.store.ledger import canary_waiting

    total = canary_waiting(db, campaign_id) if canary_only else remaining(db, campaign_id, False)
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


def _canary_phase(run: tuple, wait: timedelta):
    """Send the campaign's canary sample (if it has one not yet sent) and wait for its events.
    None: go on with the rest; else the report of a run that stopped (the canary paused it)."""
    from mailer.breaker import Thresholds
    from mailer.cli.canary import await_canary_events, start_waiting
    from mailer.dispatch import SendReport
    from mailer.store import ledger

    db, s, campaign_id = run[0], run[3], run[4]
    campaign = ledger.get_campaign(db, campaign_id)
    if not campaign.canary_size or campaign.status == "finished":
        return None
    reviewed = campaign.breaker_sent is not None  # an operator resumed after a pause
    if reviewed and not ledger.canary_waiting(db, campaign_id):
        return None
    if ledger.canary_waiting(db, campaign_id):
        report = _run(*run, None, canary_only=True)
        if report.stop_reason or report.paused:
            return report
    campaign = start_waiting(db, campaign_id, wait)
    reason = await_canary_events(db, campaign, Thresholds.from_settings(s), s.breaker_interval)
    if reason is None:
        ledger.resume_campaign(db, campaign_id)
        return None
    ledger.pause_campaign(db, campaign_id, reason, ledger.reputation(db, campaign_id))
    return SendReport(campaign_id=campaign_id, sent=0, failed=0, skipped=0, throttled=0,
                      retried=0, elapsed=0.0, finished=False, stop_reason=reason,
                      account_error=False, paused=True)


def _install_signal_handlers(dispatcher):
    """First SIGINT / SIGTERM: finish the messages in flight and stop. A second SIGINT aborts."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, _frame) -> None:
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
