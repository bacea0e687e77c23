"""The operator pages: delivery stats per issue, one issue's send over time, JSON for scripts.

Behind HTTP basic auth (MAILER_ADMIN_USER + MAILER_ADMIN_PASSWORD) or a bearer token
(MAILER_ADMIN_TOKEN). With neither configured the pages are switched off (403 with the reason),
never open. Credentials are compared in constant time, and failed attempts are rate limited per
client so a password cannot be guessed at network speed.

Pages are server-rendered: no JavaScript, no external assets; the chart is inline SVG with a text
alternative.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from mailer.config import Settings
from mailer.store.db import get_engine, session
from mailer.store.stats import (
    CampaignStats,
    TimeBucket,
    campaign_stats,
    issue_detail,
    subscriber_totals,
)
from mailer.web.limiter import FailedLoginGuard, SlidingWindowLimiter
from mailer.web.public import signup_pressure
from mailer.web.security import client_ip, rate_limit_key

router = APIRouter()

REALM = 'Basic realm="mailer operators", charset="UTF-8"'
FAILED_LOGINS_PER_MINUTE = 10

ADMIN_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
a{color:#0b57d0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;min-width:100%}
th,td{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child,.text,.left{text-align:left}
td.text{white-space:normal;overflow-wrap:anywhere;min-width:10rem}
figure{margin:0}
.warnings{padding:0;list-style:none}
.warnings li{padding:.4rem .6rem;margin:.3rem 0;border-radius:4px}
.critical{background:#fde7e4;color:#7a1b10}
.warning{background:#fff4d6;color:#5c4300}
.chart{width:100%;height:auto;display:block;background:#fff;border:1px solid #ddd}
.chart .bar{fill:#0b57d0}
.chart text{font-size:15px;fill:#444}
.chart .axis{stroke:#888;stroke-width:1}
.muted{color:#666}
@media (prefers-color-scheme:dark){
body{background:#121212;color:#e8e8e8}
a{color:#8ab4f8}
th,td{border-color:#333}
.chart{background:#1b1b1b;border-color:#333}
.chart .bar{fill:#8ab4f8}
.chart text{fill:#ccc}
.muted{color:#aaa}
.critical{background:#3a1512;color:#ffd9d4}
.warning{background:#3a2e0a;color:#ffe7a6}
}
""".strip()
ADMIN_CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(ADMIN_CSS.encode()).digest()).decode()
# Nothing but our one inline style block: no scripts, no external assets, no framing.
ADMIN_CSP = (f"default-src 'none'; style-src '{ADMIN_CSS_HASH}'; img-src 'none'; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
ADMIN_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": ADMIN_CSP,
    "x-robots-tag": "noindex, nofollow",
}


# -- authentication ---------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _basic_configured(settings: Settings) -> bool:
    return bool(settings.admin_user and settings.admin_password)


def _same(given: str, expected: str) -> bool:
    # hash first so the comparison takes the same time whatever the lengths
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode()).digest(), digest(expected.encode()).digest())


def _basic_credentials(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _credentials_valid(settings: Settings, authorization: str) -> bool:
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and settings.admin_token:
        return _same(value, settings.admin_token)
    if scheme.lower() == "basic" and _basic_configured(settings):
        credentials = _basic_credentials(value)
        if credentials is None:
            return False
        user_ok = _same(credentials[0], settings.admin_user or "")
        password_ok = _same(credentials[1], settings.admin_password or "")
        return user_ok & password_ok  # both compared, always
    return False


def _failed_logins(request: Request) -> FailedLoginGuard:
    state = request.app.state
    if getattr(state, "admin_failed_logins", None) is None:
        settings = _settings(request)
        state.admin_failed_logins = FailedLoginGuard(
            per_network=SlidingWindowLimiter(FAILED_LOGINS_PER_MINUTE, window=60.0),
            overall=SlidingWindowLimiter(settings.admin_failed_logins_global, window=3600.0))
    return state.admin_failed_logins


def _client_key(request: Request) -> str:
    # a whole IPv6 /64 is one client, as for the subscribe form
    return rate_limit_key(client_ip(request, getattr(request.app.state, "trusted_proxies", ())))


def require_operator(request: Request) -> None:
    """Let an operator through, or answer 401 (ask for credentials) / 403 (pages switched off)."""
    settings = _settings(request)
    if not (_basic_configured(settings) or settings.admin_token):
        raise HTTPException(403, "The operator pages are switched off: set MAILER_ADMIN_USER and "
                                 "MAILER_ADMIN_PASSWORD, or MAILER_ADMIN_TOKEN.")
    authorization = request.headers.get("authorization", "")
    if authorization:
        failed, client = _failed_logins(request), _client_key(request)
        retry_after = failed.retry_after(client)
        if retry_after is not None:
            raise HTTPException(429, "Too many failed log-ins. Wait a minute and try again.",
                                headers={"Retry-After": str(math.ceil(retry_after))})
        if _credentials_valid(settings, authorization):
            return
        failed.record_failure(client)
    raise HTTPException(401, "Log in as an operator to see this page.",
                        headers={"WWW-Authenticate": REALM})


# -- rendering --------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _environment(templates_dir: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir / "web")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["css"] = Markup(ADMIN_CSS)
    env.filters["pct"] = lambda rate: "–" if rate is None else f"{rate * 100:.2f} %"
    env.filters["utc"] = lambda at: at.strftime("%Y-%m-%d %H:%M UTC") if at else "–"
    return env


def _page(request: Request, template: str, **context: object) -> HTMLResponse:
    env = _environment(_settings(request).templates_dir)
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, headers=ADMIN_HEADERS)


# -- the chart --------------------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT = 480, 240
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 48, 470, 14, 204
MAX_BARS = 120


def rebin(timeline: list[TimeBucket], max_bars: int = MAX_BARS) -> tuple[list[TimeBucket], int]:
    """Minute buckets, merged into wider ones when the send spans more than ``max_bars`` minutes.

    Returns the buckets (every one in the span, empty ones included) and their width in minutes.
    """
    if not timeline:
        return [], 1
    first, last = timeline[0].start, timeline[-1].start
    span = int((last - first).total_seconds() // 60) + 1
    width = max(1, math.ceil(span / max_bars))
    counts = [0] * math.ceil(span / width)
    for bucket in timeline:
        counts[int((bucket.start - first).total_seconds() // 60) // width] += bucket.sent
    return [TimeBucket(first + timedelta(minutes=i * width), n) for i, n in enumerate(counts)], width


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M")


def chart_description(timeline: list[TimeBucket]) -> str:
    if not timeline:
        return "Nothing has been sent yet."
    total = sum(b.sent for b in timeline)
    peak = max(timeline, key=lambda b: b.sent)
    messages = "message" if total == 1 else "messages"
    return (f"{total} {messages} sent between {timeline[0].start:%Y-%m-%d %H:%M} and "
            f"{timeline[-1].start:%H:%M} UTC; the busiest minute, {_clock(peak.start)}, "
            f"sent {peak.sent}.")


def send_chart_svg(timeline: list[TimeBucket], issue_number: int) -> Markup:
    """A bar chart of messages sent per minute (or per few minutes on a long send), as SVG."""
    bars, width = rebin(timeline)
    unit = "minute" if width == 1 else f"{width} minutes"
    title = f"Issue {issue_number}: messages sent per {unit} (UTC)"
    description = chart_description(timeline)
    peak = max((b.sent for b in bars), default=0) or 1
    slot = (PLOT_RIGHT - PLOT_LEFT) / max(len(bars), 1)
    height = PLOT_BOTTOM - PLOT_TOP
    parts = [
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{Markup.escape(title)}</title>',
        f'<desc id="chart-desc">{Markup.escape(description)}</desc>',
        f'<line class="axis" x1="{PLOT_LEFT}" y1="{PLOT_BOTTOM}" x2="{PLOT_RIGHT}" '
        f'y2="{PLOT_BOTTOM}"/>',
        f'<text x="{PLOT_LEFT - 6}" y="{PLOT_TOP + 10}" text-anchor="end">{peak}</text>',
        f'<text x="{PLOT_LEFT - 6}" y="{PLOT_BOTTOM}" text-anchor="end">0</text>',
    ]
    for i, bucket in enumerate(bars):
        bar_height = bucket.sent / peak * height
        parts.append(
            f'<rect class="bar" x="{PLOT_LEFT + i * slot + slot * 0.1:.1f}" '
            f'y="{PLOT_BOTTOM - bar_height:.1f}" width="{max(slot * 0.8, 0.5):.1f}" '
            f'height="{bar_height:.1f}"><title>{_clock(bucket.start)}: {bucket.sent}</title></rect>'
        )
    if bars:
        parts.append(f'<text x="{PLOT_LEFT}" y="{CHART_HEIGHT - 10}">'
                     f'{_clock(bars[0].start)}</text>')
        parts.append(f'<text x="{PLOT_RIGHT}" y="{CHART_HEIGHT - 10}" text-anchor="end">'
                     f'{_clock(bars[-1].start)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# -- routes -----------------------------------------------------------------------------------


def _campaigns(request: Request) -> tuple[list[CampaignStats], dict[str, int]]:
    with session(get_engine(_settings(request).database_url)) as db:
        return campaign_stats(db), subscriber_totals(db)


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_index(request: Request) -> HTMLResponse:
    require_operator(request)
    campaigns, totals = _campaigns(request)
    return _page(request, "admin_index.html", campaigns=campaigns, totals=totals,
                 signups=signup_pressure(request.app))


@router.get("/admin/stats.json", include_in_schema=False)
def admin_stats_json(request: Request) -> JSONResponse:
    """The same keys as ``mailer stats --json``, plus the subscriber totals."""
    require_operator(request)
    campaigns, totals = _campaigns(request)
    return JSONResponse({"campaigns": [c.as_dict() for c in campaigns],
                         "subscribers": totals}, headers={"cache-control": "no-store"})


@router.get("/admin/issues/{number}", response_class=HTMLResponse, include_in_schema=False)
def admin_issue(request: Request, number: int) -> HTMLResponse:
    require_operator(request)
    with session(get_engine(_settings(request).database_url)) as db:
        if not campaign_stats(db, number):
            raise HTTPException(404, f"Issue {number} has not been sent.")
        detail = issue_detail(db, number)
    chart = send_chart_svg(detail.timeline, number)
    return _page(request, "admin_issue.html", detail=detail, summary=detail.summary, chart=chart,
                 chart_text=chart_description(detail.timeline))
