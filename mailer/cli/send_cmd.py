"""`mailer send` and `mailer worker`: the main job.

``mailer send --issue 644`` renders the issue once, queues one ledger row per active reader and
sends at the lower of ``--rate`` / MAILER_SEND_RATE and the account's MaxSendRate. Running it
again resumes; a finished issue is not sent again without ``--again``. Safe under cron:
``mailer send --issue latest --yes --not-before 24h`` every hour sends each issue once, a day
after its date.

These commands read their input, call the use cases in ``mailer.campaigns`` and present what
comes back; the campaign policy lives there.
"""

from __future__ import annotations

import signal
import sys
import threading
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from mailer import campaigns
from mailer.campaigns import parse_duration
from mailer.cli._app import app, counted, engine, examples, needs, not_with, settings, with_options
from mailer.cli.send_output import (
    _err,
    _fmt_duration,
    _out,
    PAUSED_EXIT,
    UNKNOWN_EXIT,
    exit_code,
    follow,
    print_paused,
    print_already_sent,
    print_dry_run,
    print_plan,
    print_recovery,
    print_summary,
    settling_line,
)
from mailer.domain import DeliveryStatus
from mailer.errors import IssueError, SendError

PLAIN_PROGRESS_EVERY = 10.0  # seconds between progress lines when stdout is not a terminal
CANARY_WAIT = "20m"  # --canary-wait when not given


def _say_where_mail_goes(transport) -> None:
    if line := campaigns.mail_destination(transport):
        _out(line, highlight=False)


# -- the command -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SendOptions:
    issue: Annotated[str, typer.Option("--issue", help="Issue number, or 'latest'.")]
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render and count the audience; send nothing.")] = False
    to: Annotated[str | None, typer.Option("--to", help="Send one test copy to ADDRESS, outside the campaign.")] = None
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Send at most N now, then stop; run the same command to continue.")] = None
    rate: Annotated[float | None, typer.Option("--rate", min=0.01, help="Messages per second; can only lower the SES account's MaxSendRate (default: that rate; SMTP/outbox: MAILER_SEND_RATE).")] = None
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, max=256, help="Messages in flight at once (default: sized from the rate and the observed latency).")] = None
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False
    resend_unknown: Annotated[bool, typer.Option("--resend-unknown", help="Re-send rows whose fate is unknown (answer lost, or in flight during a crash); may make a second copy.")] = False
    not_before: Annotated[str | None, typer.Option("--not-before", help="Wait this long after the issue's date, e.g. 24h; before that, exit 0 without sending.")] = None
    again: Annotated[bool, typer.Option("--again", help="Send an already finished issue again, as a new campaign.")] = False
    resume: Annotated[bool, typer.Option("--resume", help="Go on with a campaign the reputation breaker paused, after your review.")] = False
    canary: Annotated[str | None, typer.Option("--canary", help="First send to a random sample (2% or a number of readers), wait for its events, go on only if they hold.")] = None
    canary_wait: Annotated[str | None, typer.Option("--canary-wait", show_default=False, help=f"With --canary: how long to wait for its events (default {CANARY_WAIT}).")] = None
    preview_to: Annotated[str | None, typer.Option("--preview-to", help="Mail each issue once to the editors at ADDRESS when first found (default MAILER_PREVIEW_TO).")] = None

    @property
    def flags(self) -> campaigns.SendFlags:
        return campaigns.SendFlags(to=self.to, dry_run=self.dry_run, again=self.again,
                                   resume=self.resume, resend_unknown=self.resend_unknown)


@app.command("send", short_help="Send an issue to every confirmed reader, exactly once.",
             epilog=examples(
                 "mailer send --issue 644 --dry-run          # count readers, send nothing",
                 "mailer send --issue 644 --to you@example.org   # one test copy",
                 "mailer send --issue latest --yes --not-before 24h   # hourly cron"))
@with_options(SendOptions)
def send(options: SendOptions) -> None:
    """Send an issue to every confirmed reader: resumable, at the account's rate, never twice.

    Exit codes: 0 done or nothing to do; 1 readers failed or the provider stopped the send; 3
    paused by the reputation breaker (review, then --resume); 4 readers left unknown (their SES
    answer was lost: a later run settles them); 130 interrupted.
    """
    from mailer.sources import load_issue_from_source

    _refuse_options_that_cannot_apply(options)
    s = settings()
    if not options.dry_run:
        s.require_secret_key()  # before anything: links signed with no real key fail for all
    the_issue = load_issue_from_source(s, options.issue)
    number = the_issue.number
    if number is None:
        raise IssueError(f"issue {options.issue} has no number")
    flags = dataclasses.replace(options.flags,
                                settle_after=timedelta(seconds=s.unknown_settle_after))
    campaigns.refuse_sample_issue(s, flags)
    if not options.dry_run:
        s.require_https_links()  # readers' links through ses/smtp: https, before any mail
    if flags.for_real:
        _advance_copy_once(s, the_issue, options.preview_to or s.preview_to)
    # A dry run stops wherever the real run would, and says so in its own words.
    if not options.to and _not_due_yet(the_issue, options.not_before, options.dry_run):
        return

    db = engine()
    standing = campaigns.standing(db, number, flags)
    if standing.already is not None:
        print_already_sent(standing.already, dry_run=options.dry_run)
        _exit_if_unknown(db, standing.already, flags)
        return
    if standing.paused:
        print_paused(standing.last, dry_run=options.dry_run)
        raise typer.Exit(PAUSED_EXIT)

    rendered = _render(the_issue, s)
    campaigns.check_message(s, rendered, number)
    threads = campaigns.choose_threads(s, options.concurrency)
    transport = campaigns.open_transport(s, threads[0])
    try:
        pace = campaigns.choose_pace(s, options.rate, transport.preflight(), threads)
        _say_where_mail_goes(transport)
        if options.to and options.dry_run:
            _out(f"dry run: a test copy would go to {options.to}; nothing sent")
            return
        if options.to:
            copy = campaigns.send_test_copy(db, s, transport, rendered, options.to, number)
            _out(f"test copy of issue {number} sent to {copy.address} (message id "
                 f"{copy.provider_id}); no campaign was started")
            return
        plan = campaigns.plan_send(db, s, standing.last, flags)
        print_plan(rendered, the_issue, plan, transport.name, pace)
        sample = _canary_sample(options, plan)
        if options.dry_run:
            print_dry_run(plan, options.limit)
            if plan.pauses:
                raise typer.Exit(PAUSED_EXIT)  # as the real run will
            return
        if plan.audience == 0 and plan.new_campaign:
            _out("no confirmed readers: nothing to send (no campaign created)")
            return
        _confirm(options.yes)
        started = campaigns.start_send(db, rendered, number, transport_name=transport.name,
                                       flags=flags, canary_sample=sample)
        if started.already is not None:
            print_already_sent(started.already)  # another run finished it meanwhile
            _exit_if_unknown(db, started.already, flags)
            return
        _print_start(started, options.resend_unknown)
        job = campaigns.SendJob(db=db, transport=transport, rendered=rendered, settings=s,
                                campaign_id=started.campaign.id, issue_number=number, pace=pace)
        report = _canary_then_rest(job, options)
    finally:
        transport.close()
    outcome = campaigns.finish_send(db, report, flags.settle_after)
    print_summary(outcome)
    raise typer.Exit(exit_code(report, outcome))


@app.command("worker", short_help="Join a send from another machine (PostgreSQL).",
             epilog=examples("mailer worker", "mailer worker --campaign 3 --rate 5"))
def worker(
    campaign_id: int | None = typer.Option(None, "--campaign", help="Campaign id (default: the one being sent)."),
    rate: float | None = typer.Option(None, "--rate", min=0.01, help="Messages per second for the whole campaign."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, max=256),
) -> None:
    """Join a campaign that is being sent (another machine sharing a PostgreSQL ledger)."""
    from mailer.sources import load_issue_from_source

    s = settings()
    s.require_secret_key()
    s.require_https_links()
    db = engine()
    campaign = campaigns.pick_open_campaign(db, campaign_id)
    if campaign is None:
        _out("no campaign is being sent: nothing to do")
        return
    the_issue = load_issue_from_source(s, campaign.issue_number)
    rendered = _render(the_issue, s)
    campaigns.check_same_version(campaign, rendered)
    threads = campaigns.choose_threads(s, concurrency)
    transport = campaigns.open_transport(s, threads[0])
    try:
        pace = campaigns.choose_pace(s, rate, transport.preflight(), threads)
        _say_where_mail_goes(transport)
        print_recovery(campaigns.join_campaign(db, campaign.id))
        job = campaigns.SendJob(db=db, transport=transport, rendered=rendered, settings=s,
                                campaign_id=campaign.id, issue_number=campaign.issue_number,
                                pace=pace)
        sample_only = campaigns.canary_undecided(campaign)
        if sample_only:
            _out(f"campaign {campaign.id}'s canary is not judged yet: this worker sends only "
                 "its sample; the rest waits for the verdict")
        report = _run(job, None, canary_only=sample_only)
    finally:
        transport.close()
    outcome = campaigns.finish_send(db, report, timedelta(seconds=s.unknown_settle_after))
    print_summary(outcome)
    raise typer.Exit(exit_code(report, outcome))


# -- steps -------------------------------------------------------------------------------------

def _render(the_issue, s):
    from mailer.render import RenderOptions, render_issue

    rendered = render_issue(the_issue, RenderOptions.from_settings(s))
    for warning in getattr(rendered, "warnings", ()) or ():
        _err(f"warning: {warning}", highlight=False)
    return rendered


def _advance_copy_once(s, the_issue, address: str | None) -> None:
    if address:
        from mailer.advance_copy import send_advance_copy_once

        if note := send_advance_copy_once(engine(), s, the_issue, address):
            _out(note)


def _not_due_yet(the_issue, not_before: str | None, dry_run: bool = False) -> bool:
    """True (and said so) when --not-before puts the issue's send moment in the future."""
    if not_before is None:
        return False
    due = campaigns.due_moment(the_issue, not_before)
    if not due:
        return False
    when = f"{due:%Y-%m-%d %H:%M} UTC (in {_fmt_duration((due - datetime.now(UTC)).total_seconds())})"
    if dry_run:
        _out(f"dry run: not yet: issue {the_issue.number} would be sent after {when}; nothing "
             "would be sent")
    else:
        _out(f"issue {the_issue.number} is not due yet: it will be sent after {when}; "
             "nothing sent")
    return True


TEST_COPY_ONLY = "a test copy goes to that one address, outside the campaign"


def _refuse_options_that_cannot_apply(options: SendOptions) -> None:
    """Before anything: an option the rest of the command line makes meaningless would be
    dropped in silence (a --canary-wait without --canary sent to everyone at once)."""
    needs("--canary-wait", options.canary_wait, "--canary", options.canary is not None)
    for flag, value in (("--limit", options.limit), ("--resume", options.resume),
                        ("--again", options.again), ("--resend-unknown", options.resend_unknown),
                        ("--not-before", options.not_before), ("--canary", options.canary),
                        ("--preview-to", options.preview_to)):
        not_with(flag, value, "--to", options.to is not None, TEST_COPY_ONLY)
    not_with("--again", options.again, "--resume", options.resume,
             "--again starts a new campaign, --resume goes on with a paused one")
    not_with("--again", options.again, "--resend-unknown", options.resend_unknown,
             "--again starts a new campaign, --resend-unknown re-sends rows of the last one")


def _canary_wait(options: SendOptions):
    return parse_duration(options.canary_wait or CANARY_WAIT, "--canary-wait")


def _canary_sample(options: SendOptions, plan) -> int | None:
    """How many readers the canary sends to first (None: no canary, or a campaign going on)."""
    if options.canary is None or not plan.new_campaign:
        return None
    from mailer.cli.canary import canary_size

    sample = canary_size(options.canary, plan.audience)
    _out(f"  canary:    {counted(sample, 'reader')} at random first, then "
         f"{_fmt_duration(_canary_wait(options).total_seconds())} for their events")
    return sample


def _exit_if_unknown(db, already, flags) -> None:
    """A finished campaign with rows still unknown is not done: say why, and exit 4."""
    if not already.counts[DeliveryStatus.UNKNOWN]:
        return
    if already.campaign.transport == "ses":  # only SES's events settle them
        settling = campaigns.settling(db, already.campaign.id, flags.settle_after)
        _err(settling_line(settling, already.campaign.issue_number))
    raise typer.Exit(UNKNOWN_EXIT)


def _confirm(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise SendError("not sending: no terminal to confirm on; pass --yes to send without asking")
    if not typer.confirm("Send now?", default=False):
        _out("not sent: you answered no, so no reader was mailed")
        raise typer.Exit(1)


def _print_start(started, resend_unknown: bool) -> None:
    campaign = started.campaign
    if started.created:
        _out(f"campaign {campaign.id} started for issue {campaign.issue_number}")
        return
    _out(f"resuming campaign {campaign.id} (issue {campaign.issue_number}, "
                  f"{campaign.status}{': ' + campaign.note if campaign.note else ''})")
    print_recovery(started.recovered, resend_unknown=resend_unknown)
    if started.settled:
        _out(f"re-sending {counted(started.settled, 'delivery', 'deliveries')} whose SES answer "
             "was lost: no SES event for them after the settle window, while events for "
             "messages sent after them arrived")
    if started.requeued:
        _out(f"re-sending {started.requeued} deliveries whose fate was unknown "
             "(--resend-unknown)")
    if started.version_changed:
        _err("warning: the issue changed since this campaign started; the readers "
                          "still waiting get the new version")


def _canary_then_rest(job, options: SendOptions):
    """The canary's sample and wait, if the campaign has one; then the rest, unless the
    canary stopped the run."""
    from mailer.cli.canary import print_canary_wait

    wait = _canary_wait(options)
    report = campaigns.canary_phase(job, wait, _run, print_canary_wait)
    return report if report is not None else _run(job, options.limit)


def _run(job, limit: int | None = None, *, canary_only: bool = False):
    """One dispatcher run in a thread, with progress shown here and signals caught."""
    dispatcher, total = campaigns.new_dispatcher(job, limit, canary_only=canary_only)
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
