"""`mailer stats`: what happened to each issue after it was sent, and how the list grows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from mailer.cli._app import app, console, examples, json_text, needs, read_engine, settings, shown
from mailer.errors import MailerError
from mailer.figures import percent

if TYPE_CHECKING:
    from mailer.issue_figures import CampaignStats, IssueDetail

GROWTH_WEEKS = 12  # --weeks when not given
WATCH_EVERY = 5.0  # --every when not given

STATS_HELP = """\
Delivery stats per issue (one row per campaign), one issue in detail, or the list's growth.

Rates, as the reputation breaker, the console and SES reckon them: bounce rate = hard bounces ÷
sent (SES counts hard bounces only), complaint rate = complaints ÷ delivered. Warnings appear at half SES's review thresholds (bounce 5 %, complaint 0.1 %) and above, and at
Gmail's 0.3 % spam line.

--json prints one JSON object with stable keys:

\b
  mailer stats --json  (the same document as /admin/stats.json)
    {"campaigns": [CAMPAIGN, ...],
     "subscribers": {"pending", "active", "unsubscribed", "bounced", "complained"},
     "issues": [{"issue_number", "subject", "started_at", "sent", "delivered", "bounced",
                 "bounced_hard", "complained", "bounce_rate", "complaint_rate"}]  (the last 12, oldest first),
     "weeks": [{"week_start", "new", "confirmed", "unsubscribed", "bounced", "complained",
                "list_size", "signups", "signups_confirmed", "signups_pending", "imported",
                "confirmation_rate"}]
              (the last 26 weeks; list_size = active readers at the week's end),
     "signups": {"window_weeks", "signups", "confirmed", "pending", "confirmation_rate"}}
              (sign-ups through the form in the last 4 weeks, this one included)
  CAMPAIGN
    {"campaign_id", "issue_number", "subject", "status", "started_at", "finished_at",
     "recipients", "queued", "sending", "sent", "failed", "skipped", "unknown", "delivered",
     "bounced", "bounced_hard", "bounced_soft", "bounced_undetermined", "complained",
     "unsubscribed",
     "rates": {"delivery", "bounce", "hard_bounce", "any_bounce", "complaint", "unsubscribe"},
     "warnings": [{"code", "level", "message"}]}
    times are ISO 8601 UTC; a rate is a fraction, null while its denominator is 0;
    bounce = hard_bounce = bounced_hard / sent, any_bounce = bounced / sent,
    complaint = complained / delivered, delivery and unsubscribe are of sent
  mailer stats --issue N --json
    {"issue_number", "summary": CAMPAIGN (all campaigns of the issue added up),
     "campaigns": [CAMPAIGN, ...],
     "bounce_reasons": [{"bounce_type", "bounce_subtype", "diagnostic", "count"}],
     "domains": [{"domain", "recipients", "sent", "delivered", "bounced", "bounced_hard",
                  "complained", "bounce_rate"}],
     "sent_per_minute": [{"minute", "sent"}],
     "links": [{"n", "url", "text", "section", "clicks", "machine"}] (link counts, most clicked
              first; clicks are people's, machine the HEADs, prefetches and scanners')}
  mailer stats --subscribers --json
    {"totals": {"pending", "active", "unsubscribed", "bounced", "complained"},
     "weeks": [{"week_start", "new", "imported", "confirmed", "unsubscribed", "suppressed", "net"}]}
"""




def _print_json(data: dict) -> None:
    # plain print: rich would wrap long lines and colour the keys
    typer.echo(json_text(data))


def _campaign_table(campaigns: list[CampaignStats], title: str) -> Table:
    # short headings: the table has to fit an 80-column terminal
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
                  caption="bnc h/s: bounced hard/soft · unsub: unsubscribed after it · "
                          "bounce%: hard of sent · compl%: of delivered",
                  caption_justify="left")
    for name in ("issue", "rcpt", "sent", "deliv", "bnc h/s", "compl", "unsub", "fail",
                 "unkn", "bounce%", "compl%"):
        table.add_column(name, justify="left" if name == "issue" else "right", no_wrap=True)
    issues = [c.issue_number for c in campaigns]
    for c in campaigns:
        resent = issues.count(c.issue_number) > 1 and c.campaign_id
        table.add_row(
            f"{c.issue_number} #{c.campaign_id}" if resent else str(c.issue_number),
            str(c.recipients), str(c.sent), str(c.delivered),
            f"{c.bounced} {c.bounced_hard}/{c.bounced_soft}", str(c.complained),
            str(c.unsubscribed), str(c.failed), str(c.unknown),
            percent(c.bounce_rate), percent(c.complaint_rate),
        )
    return table


def _print_paused(campaigns: list[CampaignStats]) -> None:
    from mailer.domain import CampaignStatus

    for c in campaigns:
        if c.status == CampaignStatus.PAUSED and c.campaign_id:  # by the reputation breaker
            from mailer.campaigns import get_campaign  # the store: only for a paused one

            row = get_campaign(read_engine(), c.campaign_id)
            console.print(f"[red]paused:[/] issue {c.issue_number} (campaign {c.campaign_id}) "
                          f"by the reputation breaker: {row.pause_reason if row else ''}; resume "
                          f"with `mailer send --issue {c.issue_number} --resume`",
                          highlight=False, soft_wrap=True)


def _print_warnings(campaigns: list[CampaignStats]) -> None:
    for c in campaigns:
        for warning in c.warnings:
            colour = "red" if warning.level == "critical" else "yellow"
            console.print(f"[{colour}]{warning.level}:[/] issue {c.issue_number}: "
                          f"{shown(warning.message)}", highlight=False, soft_wrap=True)


def _show_overview(as_json: bool) -> None:
    from mailer.reads.quick_counts import campaigns_quickly

    if as_json:  # the same document as /admin/stats.json
        from mailer.reads.list_health import overview_document
        from mailer.store.db import session

        with session(read_engine()) as db:
            _print_json(overview_document(db))
        return
    # a current SQLite file is read with sqlite3 alone (no SQLAlchemy to import: a third of
    # a second); anything else, or a paused campaign, through the store
    campaigns = campaigns_quickly(settings().database_url)
    if campaigns is None:
        from mailer.reads.delivery_figures import campaign_stats
        from mailer.store.db import session

        with session(read_engine()) as db:
            campaigns = campaign_stats(db)
    if not campaigns:
        console.print("No issue has been sent yet.")
        return
    console.print(_campaign_table(campaigns, "Issues sent"))
    _print_paused(campaigns)
    _print_warnings(campaigns)


def _show_issue(number: int, as_json: bool) -> None:
    from mailer.reads.quick_counts import issue_quickly

    # a finished, kept send on a current SQLite file: sqlite3 alone, as for the overview
    detail = issue_quickly(settings().database_url, number)
    if detail is None:
        from mailer.reads.delivery_figures import issue_detail
        from mailer.store.db import session

        with session(read_engine()) as db:
            detail = issue_detail(db, number)
    if as_json:
        _print_json(detail.as_dict())
        return
    _print_issue_tables(detail)
    _print_paused(detail.campaigns)
    _print_warnings([detail.summary])


def _print_issue_tables(detail: IssueDetail) -> None:
    console.print(_campaign_table(detail.campaigns, f"Issue {detail.summary.issue_number}"))
    reasons = Table(title="Top bounce reasons", title_justify="left")
    for name in ("type", "subtype", "diagnostic", "count"):
        reasons.add_column(name, justify="right" if name == "count" else "left")
    for r in detail.bounce_reasons:
        # remote text: a diagnostic may hold "[/]" or terminal escape sequences
        reasons.add_row(shown(r.bounce_type or "–"), shown(r.bounce_subtype or "–"),
                        shown(r.diagnostic or "–"),
                        str(r.count))
    console.print(reasons if detail.bounce_reasons else "No bounces.")
    domains = Table(title="Recipient domains", title_justify="left")
    for name in ("domain", "recipients", "sent", "delivered", "bounced", "complained",
                 "bounce rate (hard ÷ sent)"):
        domains.add_column(name, justify="left" if name == "domain" else "right")
    for d in detail.domains:
        domains.add_row(shown(d.domain), str(d.recipients), str(d.sent), str(d.delivered),
                        str(d.bounced), str(d.complained), percent(d.bounce_rate))
    console.print(domains)
    timeline = Table(title="Sent per minute (UTC)", title_justify="left")
    timeline.add_column("minute")
    timeline.add_column("sent", justify="right")
    for bucket in detail.timeline:
        timeline.add_row(bucket.start.strftime("%Y-%m-%d %H:%M"), str(bucket.sent))
    console.print(timeline if detail.timeline else "Nothing sent yet.")


def _show_subscribers(weeks: int, as_json: bool) -> None:
    from mailer.reads.quick_counts import subscriber_growth_quickly

    quick = subscriber_growth_quickly(settings().database_url, weeks or None)
    if quick is None:  # not a current SQLite file: the full path reads it, or says why not
        from mailer.reads.subscriber_figures import subscribers_by_status, subscriber_growth
        from mailer.store.db import session

        with session(read_engine()) as db:
            quick = subscriber_growth(db, weeks or None), subscribers_by_status(db)
    growth, totals = quick
    if as_json:
        _print_json({"totals": totals, "weeks": [w.as_dict() for w in growth]})
        return
    table = Table(title="List growth per week (UTC, weeks start on Monday)", title_justify="left")
    for name in ("week", "new", "imported", "confirmed", "unsubscribed", "suppressed", "net"):
        table.add_column(name, justify="left" if name == "week" else "right")
    for w in growth:
        table.add_row(w.week_start.isoformat(), str(w.new), str(w.imported), str(w.confirmed),
                      str(w.unsubscribed), str(w.suppressed), f"{w.net:+d}")
    console.print(table)
    console.print("Now: " + ", ".join(f"{n} {status}" for status, n in totals.items()),
                  highlight=False)


@app.command("stats", help=STATS_HELP,
             short_help="Delivery figures per issue, and the list's growth.",
             epilog=examples("mailer stats", "mailer stats --issue 644",
                             "mailer stats --subscribers --weeks 52 --json"))
def stats(
    issue: Annotated[int | None, typer.Option("--issue", help="one issue in detail", min=1)] = None,
    subscribers: Annotated[bool, typer.Option("--subscribers", help="list growth per week")] = False,
    weeks: Annotated[int | None, typer.Option("--weeks", min=0, show_default=False,
                                              help="with --subscribers: the last N weeks "
                                              f"(0 = all; default {GROWTH_WEEKS})")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts (keys above)")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="with --issue: follow a running send "
                                        "(sent, rate, ETA, bounces, complaints, breaker) "
                                        "until it ends")] = False,
    every: Annotated[float | None, typer.Option("--every", min=0.2, show_default=False,
                                                help="with --watch: seconds between lines "
                                                f"(default {WATCH_EVERY:g})")] = None,
) -> None:
    if issue is not None and subscribers:
        raise MailerError("choose one of --issue and --subscribers")
    _refuse_lone_options(issue, subscribers, watch, weeks=weeks, every=every)
    if watch and issue is not None:
        from mailer.cli.watch import watch_issue

        watch_issue(issue, every or WATCH_EVERY, as_json=as_json)
        return
    if subscribers:
        _show_subscribers(GROWTH_WEEKS if weeks is None else weeks, as_json)
    elif issue is not None:
        _show_issue(issue, as_json)
    else:
        _show_overview(as_json)


def _refuse_lone_options(issue: int | None, subscribers: bool, watch: bool, *,
                        weeks: int | None, every: float | None) -> None:
    """An option that only applies with another is refused without it, not silently ignored."""
    needs("--watch", watch, "--issue N", issue is not None)
    needs("--every", every, "--watch", watch)
    needs("--weeks", weeks, "--subscribers", subscribers)
