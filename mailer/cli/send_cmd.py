"""`mailer send` and `mailer worker`: the main job.

``mailer send --issue 644`` renders the issue once, queues one ledger row per active reader and
sends at the lower of ``--rate`` / MAILER_SEND_RATE and the account's MaxSendRate. Running it
again resumes; a finished issue is not sent again without ``--again``. Safe under cron:
``mailer send --issue latest --yes --not-before 24h`` every hour sends each issue once, a day
after its date.

These commands parse their flags, hand them to the use case (``mailer.campaigns.send`` and
``join``), which runs the whole workflow, and print what it tells them (:class:`Terminal`, its
``SendUI``) and what it ends with. Signals are caught here.
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from mailer import campaigns
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
from mailer.errors import SendError

if TYPE_CHECKING:
    from mailer.dispatch import Dispatcher, SendReport
    from mailer.domain import Issue
    from mailer.render.pipeline import RenderedIssue

PLAIN_PROGRESS_EVERY = 10.0  # seconds between progress lines when stdout is not a terminal
CANARY_WAIT = "20m"  # --canary-wait when not given


# -- the command -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SendArguments:
    """The command line of `mailer send`."""

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
    release: Annotated[bool, typer.Option("--release", help="Lift an editor's hold on the issue; the send then goes at its planned time, or now if that passed.")] = False

    def request(self) -> campaigns.SendRequest:
        flags = campaigns.SendFlags(to=self.to, dry_run=self.dry_run, again=self.again,
                                    resume=self.resume, resend_unknown=self.resend_unknown)
        return campaigns.SendRequest(
            settings=settings(), issue=self.issue, flags=flags, not_before=self.not_before,
            limit=self.limit, rate=self.rate, concurrency=self.concurrency, canary=self.canary,
            canary_wait=self.canary_wait or CANARY_WAIT, release=self.release,
            released_by=_who_runs_this())


def _who_runs_this() -> str:
    """The login releasing a hold, for the issue's timeline."""
    import getpass

    try:
        return f"{getpass.getuser()} (mailer send --release)"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "mailer send --release"


@app.command("send", short_help="Send an issue to every confirmed reader, exactly once.",
             epilog=examples(
                 "mailer send --issue 644 --dry-run          # count readers, send nothing",
                 "mailer send --issue 644 --to you@example.org   # one test copy",
                 "mailer send --issue latest --yes --not-before 24h   # hourly cron"))
@with_options(SendArguments)
def send(options: SendArguments) -> None:
    """Send an issue to every confirmed reader: resumable, at the account's rate, never twice.

    Exit codes: 0 done or nothing to do (also: not due yet, or held by an editor, so the hourly
    timer's unit does not fail while an issue waits on purpose); 1 readers failed or the provider stopped the send; 3
    paused by the reputation breaker (review, then --resume); 4 readers left unknown (their SES
    answer was lost: a later run settles them); 130 interrupted.
    """
    _refuse_options_that_cannot_apply(options)
    result = campaigns.send(options.request(), Terminal(options))
    raise typer.Exit(_present(result, options))


@app.command("worker", short_help="Join a send from another machine (PostgreSQL).",
             epilog=examples("mailer worker", "mailer worker --campaign 3 --rate 5"))
def worker(
    campaign_id: int | None = typer.Option(None, "--campaign", help="Campaign id (default: the one being sent)."),
    rate: float | None = typer.Option(None, "--rate", min=0.01, help="Messages per second for the whole campaign."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, max=256),
) -> None:
    """Join a campaign that is being sent (another machine sharing a PostgreSQL ledger)."""
    request = campaigns.JoinRequest(settings=settings(), campaign_id=campaign_id, rate=rate,
                                    concurrency=concurrency)
    result = campaigns.join(request, Terminal())
    if isinstance(result, campaigns.NothingToJoin):
        _out("no campaign is being sent: nothing to do")
        return
    print_summary(result)
    raise typer.Exit(exit_code(result.report, result))


# -- what the use case tells the operator on the way -------------------------------------------

class Terminal:
    """The CLI's side of ``campaigns.SendUI``: lines on stdout / stderr, the confirmation on
    the terminal, a dispatcher run in a thread with its progress and signals."""

    def __init__(self, options: SendArguments | None = None) -> None:
        self.options = options

    def notice(self, line: str) -> None:
        _out(line, highlight=False)

    def warning(self, text: str) -> None:
        _err(f"warning: {text}", highlight=False)

    def advance_copy(self, issue: Issue) -> None:
        address = (self.options.preview_to if self.options else None) or settings().preview_to
        if address:
            from mailer.advance_copy import send_advance_copy_once

            planned = campaigns.planned_send(issue, self.options.not_before if self.options else None)
            if note := send_advance_copy_once(engine(), settings(), issue, address, planned):
                _out(note)

    def plan(self, plan: campaigns.SendPlan, rendered: RenderedIssue, issue: Issue,
             transport: str, pace: campaigns.Pace) -> None:
        print_plan(rendered, issue, plan, transport, pace)

    def canary_planned(self, sample: int, wait: timedelta) -> None:
        _out(f"  canary:    {counted(sample, 'reader')} at random first, then "
             f"{_fmt_duration(wait.total_seconds())} for their events")

    def confirm(self) -> bool:
        if self.options is not None and self.options.yes:
            return True
        if not sys.stdin.isatty():
            raise SendError("not sending: no terminal to confirm on; pass --yes to send without "
                            "asking")
        return typer.confirm("Send now?", default=False)

    def started(self, started: campaigns.Started) -> None:
        _print_start(started, bool(self.options and self.options.resend_unknown))

    def recovered(self, recovered: campaigns.Recovered) -> None:
        print_recovery(recovered)

    def canary_waiting(self, wait: campaigns.CanaryWait) -> None:
        from mailer.cli.canary import print_canary_wait

        print_canary_wait(wait)

    def dispatch(self, dispatcher: Dispatcher, total: int) -> SendReport:
        return _run(dispatcher, total)


# -- what it ends with ---------------------------------------------------------------------------

def _present(result: campaigns.SendResult, options: SendArguments) -> int:
    """Print what the send ended with; its exit code."""
    dry_run = options.dry_run
    if isinstance(result, campaigns.NotDue):
        _say_not_due(result, dry_run)
        return 0
    if isinstance(result, campaigns.Held):
        _say_held(result, dry_run)
        return 0
    if isinstance(result, campaigns.AlreadySent):
        print_already_sent(result, dry_run=dry_run)
        return _unknown_left(result)
    if isinstance(result, campaigns.Paused):
        print_paused(result.campaign, dry_run=dry_run)
        return PAUSED_EXIT
    if isinstance(result, campaigns.DryRunTestCopy):
        _out(f"dry run: a test copy would go to {result.address}; nothing sent")
        return 0
    if isinstance(result, campaigns.TestCopy):
        _out(f"test copy of issue {result.issue_number} sent to {result.address} (message id "
             f"{result.provider_id}); no campaign was started")
        return 0
    if isinstance(result, campaigns.DryRun):
        print_dry_run(result.plan, options.limit)
        return PAUSED_EXIT if result.plan.pauses else 0  # as the real run will
    if isinstance(result, campaigns.NoReaders):
        _out("no confirmed readers: nothing to send (no campaign created)")
        return 0
    if isinstance(result, campaigns.Declined):
        _out("not sent: you answered no, so no reader was mailed")
        return 1
    print_summary(result)
    return exit_code(result.report, result)


def _say_not_due(not_due: campaigns.NotDue, dry_run: bool) -> None:
    due = not_due.due
    when = f"{due:%Y-%m-%d %H:%M} UTC (in {_fmt_duration((due - datetime.now(UTC)).total_seconds())})"
    if dry_run:
        _out(f"dry run: not yet: issue {not_due.issue_number} would be sent after {when}; "
             "nothing would be sent")
    else:
        _out(f"issue {not_due.issue_number} is not due yet: it will be sent after {when}; "
             "nothing sent")


def _say_held(held: campaigns.Held, dry_run: bool) -> None:
    number = held.issue_number
    line = (f"issue {number} is held by {held.held_by} at {held.held_at:%Y-%m-%d %H:%M} UTC; "
            f"`mailer send --issue {number} --release` to release")
    _out(f"dry run: {line}; nothing would be sent" if dry_run else f"{line}; nothing sent",
         highlight=False)


def _unknown_left(already: campaigns.AlreadySent) -> int:
    """A finished campaign with rows still unknown is not done: say why, and exit 4."""
    if not already.counts[DeliveryStatus.UNKNOWN]:
        return 0
    if already.settling is not None:  # only SES's events settle them
        _err(settling_line(already.settling, already.campaign.issue_number))
    return UNKNOWN_EXIT


TEST_COPY_ONLY = "a test copy goes to that one address, outside the campaign"


def _refuse_options_that_cannot_apply(options: SendArguments) -> None:
    """Before anything: an option the rest of the command line makes meaningless would be
    dropped in silence (a --canary-wait without --canary sent to everyone at once)."""
    needs("--canary-wait", options.canary_wait, "--canary", options.canary is not None)
    for flag, value in (("--limit", options.limit), ("--resume", options.resume),
                        ("--again", options.again), ("--resend-unknown", options.resend_unknown),
                        ("--not-before", options.not_before), ("--canary", options.canary),
                        ("--preview-to", options.preview_to), ("--release", options.release)):
        not_with(flag, value, "--to", options.to is not None, TEST_COPY_ONLY)
    not_with("--again", options.again, "--resume", options.resume,
             "--again starts a new campaign, --resume goes on with a paused one")
    not_with("--release", options.release, "--dry-run", options.dry_run,
             "a dry run changes nothing, so it cannot lift a hold")
    not_with("--again", options.again, "--resend-unknown", options.resend_unknown,
             "--again starts a new campaign, --resend-unknown re-sends rows of the last one")


def _print_start(started: campaigns.Started, resend_unknown: bool) -> None:
    campaign = started.campaign
    if started.created:
        _out(f"campaign {campaign.id} started for issue {campaign.issue_number}")
        return
    _out(f"resuming campaign {campaign.id} (issue {campaign.issue_number}, "
                  f"{campaign.status}{': ' + campaign.note if campaign.note else ''})")
    if started.recovered is not None:  # always, for a campaign resumed
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


def _run(dispatcher: Dispatcher, total: int) -> SendReport:
    """One dispatcher run in a thread, with progress shown here and signals caught."""
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


def _install_signal_handlers(dispatcher: Dispatcher):
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
