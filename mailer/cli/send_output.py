"""What `mailer send` and `mailer worker` print: the plan, progress, recovery and the summary."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from mailer.cli._app import console, counted, err_console, visible_controls
from mailer.domain import DeliveryStatus

if TYPE_CHECKING:
    from mailer.campaigns import AlreadySent, Outcome, Pace, Recovered, SendPlan
    from mailer.dispatch import Dispatcher, SendReport
    from mailer.domain import Issue
    from mailer.render.pipeline import RenderedIssue
    from mailer.store.models import Campaign


PAUSED_EXIT = 3  # the reputation breaker paused the campaign: review, then --resume
UNKNOWN_EXIT = 4  # readers left unknown (answer lost): not finished; a later run settles them


def _out(message: str, **_: object) -> None:
    # soft_wrap: a line in a cron mail or a log must stay one line, whatever the width.
    # No markup, controls shown: subjects, addresses and SMTP / SES answers are outside text.
    console.print(visible_controls(message), highlight=False, soft_wrap=True, markup=False)


def _err(message: str, **_: object) -> None:
    err_console.print(visible_controls(message), highlight=False, soft_wrap=True, markup=False)


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


# -- what the operator sees --------------------------------------------------------------------

def print_already_sent(already: AlreadySent, *, dry_run: bool = False) -> None:
    """An issue already sent (a ``campaigns.AlreadySent``): what it did, how to send again."""
    campaign, counts = already.campaign, already.counts
    when = f" on {campaign.finished_at:%Y-%m-%d %H:%M} UTC" if campaign.finished_at else ""
    line = (f"issue {campaign.issue_number} was already sent{when} (campaign {campaign.id}: "
            f"{counts[DeliveryStatus.SENT]} sent, {counts[DeliveryStatus.FAILED]} failed, "
            f"{counts[DeliveryStatus.SKIPPED]} skipped); ")
    line = ("dry run: " + line + "nothing would be sent; --again starts a new campaign"
            if dry_run else line + "nothing to do. Pass --again to send it again")
    if counts[DeliveryStatus.UNKNOWN]:
        line += "; " + unknown_line(counts[DeliveryStatus.UNKNOWN], campaign.issue_number,
                                    campaign.transport)
    _out(line, highlight=False)


def unknown_line(count: int, issue_number: int, transport: str) -> str:
    """One line: how many rows are unknown, how they will be settled, how to resend them."""
    rows = "delivery is" if count == 1 else "deliveries are"
    if transport == "ses":
        settle = ("each settles as sent when its SES Send or Delivery event arrives (`mailer "
                  "serve` web hook, `mailer events poll` or `events replay`)")
    else:
        settle = f"the {transport} transport sends no events to settle them"
    return (f"{count} {rows} unknown (sent, then the answer was lost, or in flight during a "
            f"crash): not re-sent; {settle}; to send them again, risking a second copy: "
            f"`mailer send --issue {issue_number} --resend-unknown`")


def print_plan(rendered: RenderedIssue, the_issue: Issue, plan: SendPlan, transport_name: str,
               pace: Pace) -> None:
    """What is about to happen: a ``campaigns.SendPlan`` at a ``campaigns.Pace``."""
    audience, quota, send_rate = plan.audience, pace.quota, pace.rate
    reader = "reader" if audience == 1 else "readers"
    who = f"{reader} still waiting" if plan.resuming else f"confirmed {reader}"
    _out(f"issue {the_issue.number}: {rendered.subject}", highlight=False)
    _out(f"  audience:  {audience} {who}", highlight=False)
    source = f" ({pace.source})" if pace.source else ""
    _out(f"  transport: {transport_name}, {send_rate:g} messages/s{source}", highlight=False)
    in_flight = None if pace.sized else pace.threads
    _out("  in flight: " + (f"{in_flight} (fixed)" if in_flight else
                            "sized from the rate and the observed latency"), highlight=False)
    if quota is not None and quota.remaining_24h is not None:
        _out(f"  24-hour quota left: {quota.remaining_24h:g}", highlight=False)
        if quota.remaining_24h < audience:
            _err(f"warning: the quota runs out after {quota.remaining_24h:g} "
                              "messages; the send will stop there and resume later")
    if audience and send_rate:
        _out(f"  takes about {_fmt_duration(audience / send_rate)}", highlight=False)


def print_dry_run(plan: SendPlan, limit: int | None) -> None:
    """The last line of a dry run (a ``campaigns.SendPlan``): what the real run would do."""
    now = (f", {min(limit, plan.audience)} of them now (--limit)"
           if limit is not None and limit < plan.audience else "")
    if plan.pauses:
        _err(f"dry run: nothing sent (the reputation breaker would pause campaign "
             f"{plan.campaign_id} before its first message: {plan.pauses}; review, then "
             "--resume)")
        return
    if plan.resuming:
        would = (f"would resume campaign {plan.campaign_id}: {plan.audience} of {plan.size} "
                 f"readers left{now}")
    elif plan.audience == 0:
        would = "no confirmed readers: the real run would create no campaign"
    else:
        reader = "reader" if plan.audience == 1 else "readers"
        would = f"would start a new campaign for {plan.audience} {reader}{now}"
    _out(f"dry run: nothing sent ({would})")


def print_recovery(recovered: Recovered, *, resend_unknown: bool = False) -> None:
    """What dead workers left (a ``campaigns.Recovered``)."""
    if recovered.released:
        _out(f"{counted(recovered.released, 'row')} leased by a stopped worker "
             f"{'is' if recovered.released == 1 else 'are'} back in the queue")
    if recovered.unknown and not resend_unknown:
        _err(f"warning: {recovered.unknown} deliveries are unknown: they were in flight when a "
                          "send died, so they may or may not have arrived. They are not re-sent "
                          "now: SES's events settle them (see below); pass --resend-unknown to "
                          "send them again at once (risking a second copy)")


def _progress_line(dispatcher: Dispatcher, total: int) -> str:
    p = dispatcher.progress
    rate = p.rate()
    left = max(0, total - p.done)
    eta = _fmt_duration(left / rate) if rate > 0 and left else "-"
    return (f"sent {p.sent}/{total}  failed {p.failed}  skipped {p.skipped}  "
            f"{rate:.1f}/s  ETA {eta}")


def follow(dispatcher: Dispatcher, thread: threading.Thread, total: int, *, plain_every: float) -> None:
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


def _follow_with_bar(dispatcher: Dispatcher, thread: threading.Thread, total: int) -> None:
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("[bold]sending"), BarColumn(), TextColumn("{task.description}"),
                  console=console, transient=False) as bar:
        task = bar.add_task(_progress_line(dispatcher, total), total=total or 1)
        while thread.is_alive():
            thread.join(0.2)
            bar.update(task, completed=dispatcher.progress.done,
                       description=_progress_line(dispatcher, total))


def _paused_part(paused: int) -> str:
    return f" ({paused} paused by the reader)" if paused else ""


def print_summary(outcome: Outcome) -> None:
    """The end of a run (a ``campaigns.Outcome``): this run, then the whole campaign."""
    report, counts, campaign = outcome.report, outcome.counts, outcome.campaign
    rate = report.sent / report.elapsed if report.elapsed > 0 else 0.0
    _out(f"this run: {report.sent} sent, {report.failed} failed, {report.skipped} skipped "
                  f"(unsubscribed meanwhile), {report.throttled} throttled and retried, in "
                  f"{_fmt_duration(report.elapsed)} ({rate:.1f}/s)", highlight=False)
    waiting = counts[DeliveryStatus.QUEUED] + counts[DeliveryStatus.SENDING]
    _out(f"campaign {report.campaign_id}: {counts[DeliveryStatus.SENT]} sent, "
                  f"{counts[DeliveryStatus.FAILED]} failed, {counts[DeliveryStatus.SKIPPED]} "
                  f"skipped{_paused_part(outcome.paused)}, {waiting} waiting, "
                  f"{counts[DeliveryStatus.UNKNOWN]} unknown",
                  highlight=False)
    for notice in getattr(report, "notices", ()):
        _err(f"notice: {notice}", highlight=False)
    for address, reason in outcome.failures:
        _err(f"  failed: {address}: {reason}", highlight=False)
    if counts[DeliveryStatus.UNKNOWN]:
        _err(unknown_line(counts[DeliveryStatus.UNKNOWN], campaign.issue_number,
                          campaign.transport), highlight=False)
        if outcome.settling is not None and campaign.transport == "ses":
            _err(settling_line(outcome.settling, campaign.issue_number), highlight=False)
    if report.finished:
        _out(f"campaign {report.campaign_id} finished")
    elif report.paused:
        print_paused(campaign)
    elif report.limit_reached and not report.account_error:
        _out(report.stop_reason or "")  # "sent 2,000 of 1,000,000; run the same command ..."
    elif report.disk_full:
        _err(f"error: {report.stop_reason}; {counted(waiting, 'reader')} "
             f"{'is' if waiting == 1 else 'are'} still queued",
             highlight=False)
    elif report.outage:
        _err(f"{report.stop_reason}: stopped with {counted(waiting, 'reader')} still queued; run the same "
             "command to resume", highlight=False)
    elif report.stop_reason:
        _err(f"stopped: {report.stop_reason}. State is saved: run the same "
                          "`mailer send` command again to resume", highlight=False)


def print_paused(campaign: Campaign, *, dry_run: bool = False) -> None:
    """The one line a paused send ends with: what crossed, and how to go on."""
    _err(f"{'dry run: ' if dry_run else ''}paused by the reputation breaker: {campaign.pause_reason or campaign.note}. Review "
         f"`mailer stats --issue {campaign.issue_number}`, then resume with `mailer send "
         f"--issue {campaign.issue_number} --resume` (campaign {campaign.id} is paused)",
         highlight=False)


def settling_line(settling, issue_number: int) -> str:
    """Why the unknown rows are still unknown, and what settles them (a ``ledger.Settling``)."""
    parts = []
    if settling.waiting:
        until = f" until {settling.window_ends:%H:%M:%S} UTC" if settling.window_ends else ""
        parts.append(f"{settling.waiting} wait for their SES event{until} "
                     "(MAILER_UNKNOWN_SETTLE_AFTER); the first "
                     f"`mailer send --issue {issue_number} --yes` after that re-sends once each "
                     "one still without an event, if events for later messages arrived")
    if settling.unproven:
        parts.append(f"{settling.unproven} had no SES event, but none has arrived for the "
                     "messages sent after them either, so the event path is not shown to work "
                     "and they are not re-sent: check that events reach mailer (`mailer serve` "
                     "web hook, `mailer events poll`) and that the configuration set publishes "
                     "Send events (`mailer doctor`)")
    if settling.requeued:
        parts.append(f"{settling.requeued} may be re-sent now: run "
                     f"`mailer send --issue {issue_number} --yes`")
    return "unknown rows: " + "; ".join(parts)


def exit_code(report: SendReport, outcome: Outcome | None = None) -> int:
    if getattr(report, "paused", False):
        return PAUSED_EXIT
    if report.account_error or report.failed:
        return 1
    if report.stop_reason and report.stop_reason.startswith("interrupted"):
        return 130
    if outcome is not None and outcome.counts[DeliveryStatus.UNKNOWN]:
        return UNKNOWN_EXIT  # not finished: systemd and cron show it
    return 0
