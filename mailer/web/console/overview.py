"""Console pages across issues and for one issue: is our reputation safe, is the list growing,
how is this send going."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from markupsafe import Markup

from mailer.campaigns import settling as settling_of_unknown
from mailer.domain import CampaignStatus
from mailer.rate_warnings import (
    BOUNCE_PAUSE,
    BOUNCE_REVIEW,
    COMPLAINT_PAUSE,
    COMPLAINT_REVIEW,
    GMAIL_SPAM_LINE,
)
from mailer.reads.list_health import (
    IssueTrend,
    ListWeek,
    campaign_states,
    issue_trends,
    needs_attention,
    signup_health,
    storable_id,
)
from mailer.reads.issue_report import SendBucket, issue_progress, progress_of, rebin
from mailer.reads.page_cache import ConsoleCache, cached_overview_document
from mailer.store.db import get_engine, session
from mailer.store.link_counts import link_figures, section_figures
from mailer.reads.delivery_figures import CampaignStats, TimeBucket
from mailer.web.admin import require_operator
from mailer.web.public import signup_pressure
from mailer.web.console.charts import (
    Bar,
    Line,
    Stage,
    bar_chart,
    diverging_chart,
    funnel_chart,
    line_chart,
)
from mailer.web.console.render import fmt_number, fmt_pct, page, settings_of
from mailer.web.console import issue_hold

router = APIRouter(include_in_schema=False)

# Widths a send's chart may bin by, so its unit is one a person says aloud.
BUCKET_SECONDS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_SEND_BARS = 60
WARNED_ISSUES = 3  # rate warnings in words for the latest few; the charts show the rest
X_LABELS = 8  # about this many labels under a chart on a wide screen, half on a phone


def _db(request: Request):
    return session(get_engine(settings_of(request).database_url))


def _labelled(index: int, total: int) -> tuple[bool, bool]:
    """(show a label under this slot, hide it on a phone): the newest slot always labelled."""
    step = max(1, math.ceil(total / X_LABELS))
    from_end = total - 1 - index
    return from_end % step == 0, from_end % (2 * step) != 0


# -- overview ---------------------------------------------------------------------------------


# Each rate's denominator (mailer.figures): bounces are counted against the messages sent,
# complaints against those delivered.
_RATE_OF = {"bounce_rate": "sent", "complaint_rate": "delivered"}


def _rate_bars(trends: list[IssueTrend], attribute: str, review: float) -> list[Bar]:
    bars = []
    of = _RATE_OF[attribute]
    for i, trend in enumerate(trends):
        rate = getattr(trend, attribute) or 0.0
        shown, minor = _labelled(i, len(trends))
        bars.append(Bar(str(trend.issue_number) if shown else "", rate,
                        f"Issue {trend.issue_number}: {fmt_pct(rate)} of "
                        f"{fmt_number(getattr(trend, of))} {of}",
                        "over" if rate >= review else "bar", minor))
    return bars


def overview_charts(trends: list[IssueTrend], weeks: list[ListWeek]) -> dict[str, Markup]:
    first_last = (f"issues {trends[0].issue_number} to {trends[-1].issue_number}" if trends
                  else "no issues yet")
    worst_bounce = max((t.bounce_rate or 0 for t in trends), default=0)
    worst_complaint = max((t.complaint_rate or 0 for t in trends), default=0)
    delivered = [Bar(b.label, t.delivered, f"Issue {t.issue_number}: {fmt_number(t.delivered)} "
                     "delivered", "bar2", b.minor)
                 for t, b in zip(trends, _rate_bars(trends, "bounce_rate", 1), strict=True)]
    return {
        "bounces": bar_chart(
            "Bounce rate per issue", f"Bounce rate (hard bounces ÷ sent) of {first_last}; the highest is "
            f"{fmt_pct(worst_bounce)}, against SES's review line at {fmt_pct(BOUNCE_REVIEW, 0)} "
            f"and pause line at {fmt_pct(BOUNCE_PAUSE, 0)}.",
            _rate_bars(trends, "bounce_rate", BOUNCE_REVIEW), fmt=lambda v: fmt_pct(v, 1),
            lines=[Line(BOUNCE_REVIEW, "SES review 5 %", "review"),
                   Line(BOUNCE_PAUSE, "SES pause 10 %", "pause")]),
        "complaints": bar_chart(
            "Complaint rate per issue", f"Complaint rate (complaints ÷ delivered) of {first_last}; "
            f"the highest is "
            f"{fmt_pct(worst_complaint)}, against SES's review line at 0.1 %, Gmail's spam line "
            "at 0.3 % and SES's pause line at 0.5 %.",
            _rate_bars(trends, "complaint_rate", COMPLAINT_REVIEW), fmt=lambda v: fmt_pct(v, 2),
            lines=[Line(COMPLAINT_REVIEW, "SES review 0.1 %", "review"),
                   Line(GMAIL_SPAM_LINE, "Gmail 0.3 %", "gmail"),
                   Line(COMPLAINT_PAUSE, "SES pause 0.5 %", "pause")]),
        "delivered": bar_chart(
            "Delivered per issue", f"Messages delivered for {first_last}.", delivered,
            fmt=fmt_number, counts=True),
        "list_size": _list_size_chart(weeks),
        "flows": _flows_chart(weeks),
    }


def _week_label(weeks: list[ListWeek], i: int) -> tuple[str, bool]:
    shown, minor = _labelled(i, len(weeks))
    # "Nov 30", not "2026-11-30": four ISO dates did not fit a phone's width side by side.
    week = weeks[i].week_start
    return (f"{week:%b} {week.day}" if shown else ""), minor


def _list_size_chart(weeks: list[ListWeek]) -> Markup:
    points = []
    for i, week in enumerate(weeks):
        label, minor = _week_label(weeks, i)
        points.append(Bar(label, week.list_size, f"Week of {week.week_start}: "
                          f"{fmt_number(week.list_size)} active readers", minor=minor))
    first, last = (weeks[0], weeks[-1]) if weeks else (None, None)
    text = (f"Active readers at the end of each week, from {fmt_number(first.list_size)} in the "
            f"week of {first.week_start} to {fmt_number(last.list_size)} now." if first and last
            else "No readers yet.")
    return line_chart("List size per week", text, points, fmt=fmt_number)


def _flows_chart(weeks: list[ListWeek]) -> Markup:
    ups, downs = [], []
    for week in weeks:
        lost = week.unsubscribed + week.bounced + week.complained
        came = week.confirmed + week.imported
        ups.append(Bar("", came, f"Week of {week.week_start}: {fmt_number(week.confirmed)} "
                       f"confirmed, {fmt_number(week.imported)} imported", "gain"))
        downs.append(Bar("", lost, f"Week of {week.week_start}: {fmt_number(lost)} left "
                         f"({week.unsubscribed} unsubscribed, {week.bounced} bounced, "
                         f"{week.complained} complained)", "loss"))
    confirmed = sum(w.confirmed for w in weeks)
    imported = sum(w.imported for w in weeks)
    lost = sum(w.unsubscribed + w.bounced + w.complained for w in weeks)
    return diverging_chart(
        "Readers gained and lost per week",
        f"Over {len(weeks)} weeks {fmt_number(confirmed)} readers confirmed and "
        f"{fmt_number(imported)} were imported (bars up), and "
        f"{fmt_number(lost)} left by unsubscribing, bouncing or complaining (bars down).",
        ups, downs, fmt=fmt_number)


def figure_cache(request: Request) -> ConsoleCache:
    state = request.app.state
    if getattr(state, "console_cache", None) is None:
        state.console_cache = ConsoleCache()
    return state.console_cache


@router.get("/admin", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    require_operator(request)
    cache = figure_cache(request)
    with _db(request) as db:
        campaigns = cache.campaign_stats(db)
        weeks, totals = cache.list_parts(db)
        states = campaign_states(db, [c.campaign_id for c in campaigns
                                      if c.campaign_id and (needs_attention(c)
                                                            or c.status == CampaignStatus.SENDING)])
    trends = issue_trends(campaigns)
    shown = {t.issue_number for t in trends[-WARNED_ISSUES:]}
    return page(request, "admin_index.html", campaigns=campaigns, totals=totals, weeks=weeks,
                trends=trends, signups=signup_health(weeks), charts=overview_charts(trends, weeks),
                attention=[c for c in campaigns if needs_attention(c)],
                running=[s for s in states.values() if s.running], states=states,
                warned=[c for c in campaigns if c.issue_number in shown],
                signup_pause=signup_pressure(request.app),
                sections=section_figures(get_engine(settings_of(request).database_url)))


@router.get("/admin/stats.json")
def stats_json(request: Request) -> JSONResponse:
    """The same document as ``mailer stats --json``."""
    require_operator(request)
    with _db(request) as db:
        document = cached_overview_document(db, figure_cache(request))
    return JSONResponse(document, headers={"cache-control": "no-store"})


# -- one issue --------------------------------------------------------------------------------


def bucket_width(first: datetime | None, last: datetime | None) -> int:
    """The narrowest readable bin (1, 5, 10, 15, 30 minutes, 1 hour ...) giving at most
    ``MAX_SEND_BARS`` bars."""
    if first is None or last is None:
        return 60
    span = (last - first).total_seconds() + 1
    for seconds in BUCKET_SECONDS:
        if span / seconds <= MAX_SEND_BARS:
            return seconds
    return BUCKET_SECONDS[-1]


def unit_name(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    minutes = seconds // 60
    return "minute" if minutes == 1 else f"{minutes} minutes"


def send_buckets(timeline: list[TimeBucket]) -> tuple[list[SendBucket], int]:
    """The minute timeline in bars of a readable width, and that width in seconds."""
    first, last = (timeline[0].start, timeline[-1].start) if timeline else (None, None)
    seconds = bucket_width(first, last)
    return rebin(timeline, seconds), seconds


def send_description(buckets: list[SendBucket], seconds: int) -> str:
    if not buckets:
        return "Nothing has been sent yet."
    total = sum(b.sent for b in buckets)
    peak = max(buckets, key=lambda b: b.sent)
    messages = "message" if total == 1 else "messages"
    unit = unit_name(seconds)
    busiest = "minute" if seconds == 60 else unit_name(seconds) + " from"
    per_second = peak.sent / seconds
    return (f"{fmt_number(total)} {messages} sent between {buckets[0].start:%Y-%m-%d %H:%M} and "
            f"{buckets[-1].start:%H:%M} UTC; the busiest {busiest} {peak.start:%H:%M} sent "
            f"{fmt_number(peak.sent)} (about {per_second:.1f} per second), per {unit} shown.")


def send_chart(issue_number: int, buckets: list[SendBucket], seconds: int) -> Markup:
    bars = []
    for i, bucket in enumerate(buckets):
        shown, minor = _labelled(i, len(buckets))
        bars.append(Bar(f"{bucket.start:%H:%M}" if shown else "", bucket.sent,
                        f"{bucket.start:%H:%M}: {fmt_number(bucket.sent)} sent", minor=minor))
    return bar_chart(f"Issue {issue_number}: messages sent per {unit_name(seconds)} (UTC)",
                     send_description(buckets, seconds), bars, fmt=fmt_number, counts=True)


def funnel(summary: CampaignStats) -> Markup:
    sent = summary.sent

    def share(part: int) -> str:
        return f"{fmt_pct(part / sent, 1)} of sent" if sent else ""

    stages = [
        Stage("Recipients", summary.recipients, ""),
        Stage("Sent", sent, fmt_pct(sent / summary.recipients, 1) + " of recipients"
              if summary.recipients else ""),
        Stage("Delivered", summary.delivered, share(summary.delivered), "bar2"),
        Stage("Bounced", summary.bounced, share(summary.bounced), "over"),
        Stage("Complained", summary.complained,  # the complaint rate: of those delivered
              f"{fmt_pct(summary.complaint_rate, 1)} of delivered" if summary.delivered else "",
              "over"),
    ]
    return funnel_chart(
        f"Issue {summary.issue_number}: from recipients to inboxes",
        f"{fmt_number(summary.recipients)} recipients, {fmt_number(sent)} sent, "
        f"{fmt_number(summary.delivered)} delivered, {fmt_number(summary.bounced)} bounced, "
        f"{fmt_number(summary.complained)} complained.", stages, fmt_number)


def _issue_number(number: int) -> int:
    if not storable_id(number):
        raise HTTPException(404, f"Issue {number} has not been sent.")
    return number


@router.get("/admin/issues/{number}", response_class=HTMLResponse)
def issue_page(request: Request, number: int) -> HTMLResponse:
    require_operator(request)
    number = _issue_number(number)
    with _db(request) as db:
        bundle = figure_cache(request).issue_bundle(db, number)
    if bundle is None:  # held, or previewed and waiting: only its timeline to show
        return issue_hold.waiting_page(request, number)
    detail = bundle.detail
    buckets, seconds = send_buckets(detail.timeline)
    progress = progress_of(detail.campaigns, bundle.states)
    return page(request, "admin_issue.html", detail=detail, summary=detail.summary,
                settling=_settling(request, detail.campaigns),
                funnel=funnel(detail.summary), chart=send_chart(number, buckets, seconds),
                chart_text=send_description(buckets, seconds), providers=bundle.providers,
                unsubscribed=bundle.unsubscribes, states=bundle.states, progress=progress,
                live=progress.running, **issue_hold.timeline_context(request, number),
                # read fresh, not from the figure cache: clicks come in while deliveries stay
                links=link_figures(get_engine(settings_of(request).database_url), number))


def _settling(request: Request, campaign_list: list[CampaignStats]) -> dict:
    """Where each campaign's unknown rows stand against the settle rule (never cached: the
    window passes and events arrive while the figures stay the same)."""
    after = timedelta(seconds=settings_of(request).unknown_settle_after)
    engine = get_engine(settings_of(request).database_url)
    return {c.campaign_id: settling_of_unknown(engine, c.campaign_id, after)
            for c in campaign_list if c.unknown and c.campaign_id is not None}


@router.get("/admin/issues/{number}/progress.json")
def issue_progress_json(request: Request, number: int) -> JSONResponse:
    """The running send's figures, polled by the issue page."""
    require_operator(request)
    number = _issue_number(number)
    with _db(request) as db:
        progress = issue_progress(db, number)
    if progress is None:
        raise HTTPException(404, f"Issue {number} has not been sent.")
    return JSONResponse(progress.as_dict(), headers={"cache-control": "no-store"})


__all__ = ["bucket_width", "figure_cache", "router", "send_buckets", "send_description",
           "unit_name"]
