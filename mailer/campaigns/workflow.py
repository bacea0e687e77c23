"""The send as one use case: :func:`send` for `mailer send`, :func:`join` for `mailer worker`
(issue 22 §1).

Each runs the whole workflow (load and render the issue, judge it against the flags, open the
transport, plan, start or resume the campaign, the canary, the run, the figures after it) and
returns what it ended with. It depends on one small interface it owns, :class:`SendUI`, for
what needs the operator while it runs: notices, the confirmation, the progress of a run (and
its signals), the canary's wait. The CLI implements it and prints what comes back; a test
implements it in a few lines and calls the workflow in process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from mailer.campaigns.policy import (
    SendFlags, SendPlan, due_moment, issue_moment, parse_duration, plan_send, refuse_sample_issue, standing,
)
from mailer.campaigns.results import (
    AlreadySent, Outcome, Recovered, finish_send, id_of, settling,
)
from mailer.campaigns.run import (
    CanaryWait, SendJob, canary_phase, canary_size, canary_undecided, new_dispatcher,
)
from mailer.campaigns.start import (
    Pace, Started, TestCopy, check_message, check_same_version, choose_pace, choose_threads,
    join_campaign, open_pooled_transport, pick_open_campaign, send_test_copy, start_send,
)
from mailer.domain import DeliveryStatus
from mailer.errors import IssueError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mailer.config import Settings
    from mailer.dispatch import Dispatcher, SendReport
    from mailer.domain import Issue
    from mailer.render.pipeline import RenderedIssue
    from mailer.store.models import Campaign
    from mailer.transports.base import Transport


class SendUI(Protocol):
    """What the workflow needs from whoever runs it, in the order a send meets it."""

    def notice(self, line: str) -> None:
        """A line for the operator (where the mail goes, what a worker sends)."""

    def warning(self, text: str) -> None:
        """Something the operator should look at; the send goes on."""

    def advance_copy(self, issue: Issue) -> None:
        """Mail the editors their advance copy of the issue once (``mailer.advance_copy``, a sibling use case:
        the entry point owns it)."""

    def plan(self, plan: SendPlan, rendered: RenderedIssue, issue: Issue, transport: str,
             pace: Pace) -> None:
        """What is about to happen, before the confirmation."""

    def canary_planned(self, sample: int, wait: timedelta) -> None:
        """The new campaign starts with a canary of ``sample`` readers, judged after ``wait``."""

    def confirm(self) -> bool:
        """May the send go on? False: nothing is sent."""

    def started(self, started: Started) -> None:
        """The campaign was started or resumed."""

    def recovered(self, recovered: Recovered) -> None:
        """A worker joining found these rows left by workers that died."""

    def canary_waiting(self, wait: CanaryWait) -> None:
        """Every few seconds while the canary's events are awaited, and once when they held."""

    def dispatch(self, dispatcher: Dispatcher, total: int) -> SendReport:
        """Run the dispatcher (``dispatcher.run()``) to its report, showing its progress on at
        most ``total`` rows; the CLI runs it in a thread and turns signals into
        ``dispatcher.stop``."""


# -- what a send ends with (besides Outcome, TestCopy and AlreadySent) ---------------------------

@dataclass(frozen=True)
class NotDue:
    """``--not-before`` puts the issue's send moment in the future: nothing sent."""

    issue_number: int
    due: datetime


@dataclass(frozen=True)
class Held:
    """An editor held the issue from its preview: no send until ``--release`` (or the
    console's Release button)."""

    issue_number: int
    held_by: str
    held_at: datetime


@dataclass(frozen=True)
class Paused:
    """The breaker paused the issue's campaign: only ``--resume`` goes on."""

    campaign: Campaign


@dataclass(frozen=True)
class DryRun:
    """What the real run would do (``plan.pauses``: it would stop at once, paused)."""

    plan: SendPlan


@dataclass(frozen=True)
class DryRunTestCopy:
    """``--to`` with ``--dry-run``: the copy that would go out."""

    address: str


@dataclass(frozen=True)
class NoReaders:
    """No confirmed reader: no campaign was created."""


@dataclass(frozen=True)
class Declined:
    """The operator answered no to the confirmation."""


@dataclass(frozen=True)
class NothingToJoin:
    """`mailer worker` found no campaign being sent."""


SendResult = (NotDue | Held | AlreadySent | Paused | DryRun | DryRunTestCopy | TestCopy | NoReaders
              | Declined | Outcome)
JoinResult = NothingToJoin | Outcome


@dataclass(frozen=True)
class SendRequest:
    """One `mailer send`, its flags read and checked against each other."""

    settings: Settings
    issue: str | int  # a number, or "latest"
    flags: SendFlags = SendFlags()
    not_before: str | None = None  # e.g. "24h" after the issue's date
    limit: int | None = None  # rows this run sends at most
    rate: float | None = None  # --rate
    concurrency: int | None = None  # --concurrency
    canary: str | None = None  # "2%" or a number of readers
    canary_wait: str = "20m"  # how long the canary's events are awaited, read when needed
    release: bool = False  # --release: lift an editor's hold first
    released_by: str = "the command line"  # who releases, for the issue's timeline


@dataclass(frozen=True)
class JoinRequest:
    """One `mailer worker`: the campaign to join (None: the only one being sent)."""

    settings: Settings
    campaign_id: int | None = None
    rate: float | None = None
    concurrency: int | None = None


# -- the send ------------------------------------------------------------------------------------

def send(request: SendRequest, ui: SendUI) -> SendResult:
    """Send the issue to its readers (or a test copy, or a dry run), all of `mailer send`."""
    from mailer.sources import load_issue_from_source

    s, dry_run = request.settings, request.flags.dry_run
    if not dry_run:
        s.require_secret_key()  # before anything: links signed with no real key fail for all
    issue = load_issue_from_source(s, request.issue)
    number = issue.number
    if number is None:
        raise IssueError(f"issue {request.issue} has no number")
    flags = dataclasses.replace(request.flags,
                                settle_after=timedelta(seconds=s.unknown_settle_after))
    refuse_sample_issue(s, flags)
    if not dry_run:
        s.require_https_links()  # readers' links through ses/smtp: https, before any mail
    db = _ledger(s)
    if flags.for_real:
        _record_found(db, issue, request.not_before)
        ui.advance_copy(issue)
    if not flags.to:  # a test copy goes out held or not: it is the editors' own check
        stopped = _held_or_released(db, issue, request, ui)
        if stopped is not None:
            return stopped
    if not flags.to and request.not_before is not None:
        due = due_moment(issue, request.not_before)
        if due is not None:
            return NotDue(issue_number=number, due=due)
    judged = standing(db, number, flags)
    if judged.already is not None:
        return _with_settling(db, judged.already, flags.settle_after)
    if judged.paused and judged.last is not None:
        return Paused(judged.last)
    rendered = _render(issue, s, ui)
    check_message(s, rendered, number)
    threads = choose_threads(s, request.concurrency)
    transport = open_pooled_transport(s, threads[0])
    try:
        pace = choose_pace(s, request.rate, transport.preflight(), threads)
        _say_where_mail_goes(transport, ui)
        if flags.to:
            if dry_run:
                return DryRunTestCopy(flags.to)
            return send_test_copy(db, s, transport, rendered, flags.to, number)
        plan = plan_send(db, s, judged.last, flags)
        ui.plan(plan, rendered, issue, transport.name, pace)
        sample = _canary_sample(request, plan, ui)
        if dry_run:
            return DryRun(plan)
        if plan.audience == 0 and plan.new_campaign:
            return NoReaders()
        if not ui.confirm():
            return Declined()
        started = start_send(db, rendered, number, transport_name=transport.name, flags=flags,
                             canary_sample=sample)
        if started.already is not None:  # another run finished it meanwhile
            return _with_settling(db, started.already, flags.settle_after)
        ui.started(started)
        job = SendJob(db=db, transport=transport, rendered=rendered, settings=s,
                      campaign_id=id_of(started.campaign), issue_number=number, pace=pace)
        report = _canary_then_rest(job, request, ui)
    finally:
        transport.close()
    return finish_send(db, report, flags.settle_after)


def join(request: JoinRequest, ui: SendUI) -> JoinResult:
    """Join the campaign being sent from another machine sharing the ledger: `mailer worker`."""
    from mailer.sources import load_issue_from_source

    s = request.settings
    s.require_secret_key()
    s.require_https_links()
    db = _ledger(s)
    campaign = pick_open_campaign(db, request.campaign_id)
    if campaign is None:
        return NothingToJoin()
    joined = id_of(campaign)
    rendered = _render(load_issue_from_source(s, campaign.issue_number), s, ui)
    check_same_version(campaign, rendered)
    threads = choose_threads(s, request.concurrency)
    transport = open_pooled_transport(s, threads[0])
    try:
        pace = choose_pace(s, request.rate, transport.preflight(), threads)
        _say_where_mail_goes(transport, ui)
        ui.recovered(join_campaign(db, joined))
        job = SendJob(db=db, transport=transport, rendered=rendered, settings=s,
                      campaign_id=joined, issue_number=campaign.issue_number, pace=pace)
        sample_only = canary_undecided(campaign)
        if sample_only:
            ui.notice(f"campaign {joined}'s canary is not judged yet: this worker sends "
                      "only its sample; the rest waits for the verdict")
        report = _run(job, ui, None, canary_only=sample_only)
    finally:
        transport.close()
    return finish_send(db, report, timedelta(seconds=s.unknown_settle_after))


# -- steps ---------------------------------------------------------------------------------------

def _ledger(s: Settings) -> Engine:
    """The ledger a send writes: created with its schema if it is not there yet."""
    from mailer.store.db import get_engine

    return get_engine(s.database_url)


def _render(issue: Issue, s: Settings, ui: SendUI) -> RenderedIssue:
    from mailer.render import RenderOptions, render_issue

    rendered = render_issue(issue, RenderOptions.from_settings(s))
    for warning in getattr(rendered, "warnings", ()) or ():
        ui.warning(warning)
    return rendered


def planned_send(issue: Issue, not_before: str | None) -> datetime | None:
    """When the readers' send of ``issue`` is due under ``--not-before`` (None: on this run,
    no --not-before), the moment the editors' preview names; past or to come."""
    if not_before is None:
        return None
    return issue_moment(issue) + parse_duration(not_before)


def _record_found(db: Engine, issue: Issue, not_before: str | None) -> None:
    """The issue's timeline starts with the first run that meets it, previews or not."""
    from mailer.store import issue_timeline

    planned = planned_send(issue, not_before)
    issue_timeline.record_found_once(
        db, issue.number or 0,
        f"planned send {planned:%Y-%m-%d %H:%M} UTC" if planned is not None else None)


def _held_or_released(db: Engine, issue: Issue, request: SendRequest, ui: SendUI
                      ) -> Held | NotDue | None:
    """A held issue ends the run (Held) unless ``--release`` lifts the hold; the send released
    then goes at the moment the timer planned (NotDue until then), or now if it passed."""
    from mailer.store import advance_copies, issue_timeline

    number = issue.number or 0
    if request.not_before is not None and not request.flags.dry_run:
        # the timer's --not-before is the plan: a release without one keeps to the last one seen
        advance_copies.set_planned(db, number, planned_send(issue, request.not_before))
    if not request.release:
        hold = issue_timeline.hold_of(db, number)
        return Held(number, hold.held_by, hold.held_at) if hold is not None else None
    lifted = issue_timeline.release(db, number, request.released_by)
    if lifted is None:
        ui.notice(f"issue {number} was not held: nothing to release")
    else:
        ui.notice(f"released issue {number}, held by {lifted.held_by} at "
                  f"{lifted.held_at:%Y-%m-%d %H:%M} UTC")
    preview = advance_copies.get(db, number)
    planned = preview.planned_send_at if preview is not None else None
    if request.not_before is None and planned is not None and planned > datetime.now(UTC):
        return NotDue(issue_number=number, due=planned)
    return None


def _say_where_mail_goes(transport: Transport, ui: SendUI) -> None:
    from mailer.transports import transport_notice

    if line := transport_notice(transport):
        ui.notice(line)


def _with_settling(db: Engine, already: AlreadySent, settle_after: timedelta) -> AlreadySent:
    """A finished campaign with rows still unknown is not done: where they stand against the
    settle rule, when SES events can settle them."""
    if already.counts[DeliveryStatus.UNKNOWN] and already.campaign.transport == "ses":
        return dataclasses.replace(
            already, settling=settling(db, id_of(already.campaign), settle_after))
    return already


def _canary_sample(request: SendRequest, plan: SendPlan, ui: SendUI) -> int | None:
    """How many readers the canary sends to first (None: no canary, or a campaign going on)."""
    if request.canary is None or not plan.new_campaign:
        return None
    sample = canary_size(request.canary, plan.audience)
    ui.canary_planned(sample, _canary_wait(request))
    return sample


def _canary_wait(request: SendRequest) -> timedelta:
    return parse_duration(request.canary_wait, "--canary-wait")


def _canary_then_rest(job: SendJob, request: SendRequest, ui: SendUI) -> SendReport:
    """The canary's sample and wait, if the campaign has one; then the rest, unless the
    canary stopped the run."""
    def run_sample(job: SendJob, *, canary_only: bool) -> SendReport:
        return _run(job, ui, None, canary_only=canary_only)

    report = canary_phase(job, _canary_wait(request), run_sample, ui.canary_waiting)
    return report if report is not None else _run(job, ui, request.limit)


def _run(job: SendJob, ui: SendUI, limit: int | None, *, canary_only: bool = False) -> SendReport:
    dispatcher, total = new_dispatcher(job, limit, canary_only=canary_only)
    return ui.dispatch(dispatcher, total)


__all__ = [
    "Declined", "DryRun", "DryRunTestCopy", "Held", "JoinRequest", "JoinResult", "NoReaders",
    "NotDue", "NothingToJoin", "planned_send", "Paused", "SendRequest", "SendResult", "SendUI", "join", "send",
]
