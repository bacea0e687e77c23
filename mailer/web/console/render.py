"""Rendering and request guards shared by the console's pages: templates, number and date
formats, CSRF tokens and the rate limit on operator actions."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from mailer.config import Settings
from mailer.domain import CampaignStatus
from mailer.figures import percent
from mailer.render.templates import Filter, template_environment
from mailer.web.admin import require_operator
from mailer.web.console.assets import CONSOLE_CSS, CONSOLE_HEADERS, CONSOLE_JS
from mailer.web.security import SlidingWindowLimiter, client_ip, rate_limit_key

ACTIONS_PER_MINUTE = 20  # operator writes per client per minute: plenty for a person


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


# -- formats: one for numbers, one for percentages, one for dates -------------------------------


def fmt_number(value: float | int | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def fmt_pct(rate: float | None, digits: int = 2) -> str:
    return percent(rate, digits)  # written as `mailer stats` writes it


def fmt_time(at: datetime | date | str | None) -> str:
    """Every date on the console: ``2026-11-18 10:00 UTC`` (a day alone: ``2026-11-16``)."""
    if at is None:
        return "–"
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if isinstance(at, datetime):
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return at.isoformat()


# -- what to run: the end of a paused or stopped send's notice ------------------------------------


def _counted(n: int | None, one: str, many: str) -> str:
    return f"{fmt_number(n or 0)} {one if n == 1 else many}"


def _command(text: str) -> Markup:
    # a command wraps between its words only, never after the "-" of an option
    words = Markup(" ").join(Markup("<span>{}</span>").format(word) for word in text.split())
    return Markup('<code class="run">{}</code>').format(words)


def _breaker_figures(state) -> str:
    """What the reputation breaker saw when it paused, counted as `mailer stats` counts."""
    figures = getattr(state, "breaker", None)
    if figures is None:
        return ""
    when = f" at {fmt_time(state.paused_at)}" if getattr(state, "paused_at", None) else ""
    return (f"When it paused{when}: {_counted(figures.sent, 'sent', 'sent')}, "
            f"{_counted(figures.delivered, 'delivered', 'delivered')}, "
            f"{_counted(figures.hard_bounces, 'hard bounce', 'hard bounces')}, "
            f"{_counted(figures.complaints, 'complaint', 'complaints')}.")


def what_to_run(campaign, state=None) -> Markup:
    """Why a send is not going on, in figures, and the exact command that goes on with it: the
    same commands `mailer send` and `mailer stats` print (``--resume`` only after a pause)."""
    number, status = campaign.issue_number, str(state.status if state else campaign.status)
    parts: list[Markup | str] = []
    if status == CampaignStatus.PAUSED:
        parts += [_breaker_figures(state), Markup("Review {}, then run {} to go on.").format(
            _command(f"mailer stats --issue {number}"),
            _command(f"mailer send --issue {number} --resume"))]
    elif status == CampaignStatus.STOPPED:
        waiting = (campaign.queued or 0) + (getattr(campaign, "sending", 0) or 0)
        rest = (f"go on with the {_counted(waiting, 'reader', 'readers')} still waiting"
                if waiting else "finish it")
        parts.append(Markup("Its state is saved: once what stopped it is dealt with, run {} to "
                            "{}.").format(_command(f"mailer send --issue {number}"), rest))
    if campaign.unknown:
        # Unknown rows settle from SES's events (issue 21): why_unknown says how they stand.
        parts.append(Markup("{} sends every unknown row again at once, risking a second "
                            "copy.").format(_command(f"mailer send --issue {number} --resend-unknown")))
    return Markup(" ").join(part for part in parts if part)


def why_unknown(settling, number: int) -> Markup:
    """Why a campaign's rows are unknown and whether they settle on their own: the same rule,
    and the same advice, as the lines `mailer send` ends with (a ``Settling``)."""
    if settling is None:
        return Markup("")
    send = _command(f"mailer send --issue {number} --yes")
    parts: list[Markup] = []
    if settling.waiting:
        until = f" until {settling.window_ends:%H:%M:%S} UTC" if settling.window_ends else ""
        parts.append(Markup(
            "{} for their SES event{} (MAILER_UNKNOWN_SETTLE_AFTER): they will settle, the "
            "first {} after that re-sends once each one still without an event, if events for "
            "later messages arrived.").format(
                _counted(settling.waiting, "row waits", "rows wait"), until, send))
    if settling.unproven:
        parts.append(Markup(
            "{} had no SES event, and none arrived for the messages sent after them either: "
            "the event path is not shown to work, so they will not settle and are not re-sent. "
            "Configure the Send event type in the configuration set, check that events reach "
            "mailer, and run {}.").format(
                _counted(settling.unproven, "row", "rows"), _command("mailer doctor")))
    if settling.requeued:
        parts.append(Markup("{} will be re-sent by the next {}.").format(
            _counted(settling.requeued, "row", "rows"), send))
    return Markup(" ").join(parts)


FILTERS: dict[str, Filter] = {"num": fmt_number, "pct": fmt_pct, "utc": fmt_time, "what_to_run": what_to_run,
           "why_unknown": why_unknown}
# passed at each render, not set on the environment the public pages share
LAYOUT = {"css": Markup(CONSOLE_CSS), "script": Markup(CONSOLE_JS)}


def page(request: Request, template: str, status_code: int = 200, **context: object) -> HTMLResponse:
    env = template_environment(settings_of(request).templates_dir / "web", FILTERS)
    context.setdefault("live", False)
    html = env.get_template(template).render(LAYOUT, csrf_token=csrf_token(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=CONSOLE_HEADERS)


# -- who is acting ------------------------------------------------------------------------------


def operator_name(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return "operator"
        return decoded.partition(":")[0][:64] or "operator"
    return "token"


def _client_key(request: Request) -> str:
    trusted = getattr(request.app.state, "trusted_proxies", ())
    return rate_limit_key(client_ip(request, trusted))


# -- CSRF -----------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """Bound to the operator's credentials and the server's key; a cross-site page cannot read
    it, so it cannot forge a form the browser would send with the cached credentials."""
    key = settings_of(request).secret_key.encode()
    who = hashlib.sha256(request.headers.get("authorization", "").encode()).digest()
    return hmac.new(key, b"mailer.admin.csrf.v1|" + who, hashlib.sha256).hexdigest()


def _same_site(request: Request) -> bool:
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if not origin:
        return True  # an old browser; the token still has to match
    allowed = {request.headers.get("host", ""), urlsplit(settings_of(request).base_url).netloc}
    return urlsplit(origin).netloc in allowed


def check_write(request: Request, form_token: str) -> None:
    """Guard every operator write: logged in, same site, a valid token, within the rate."""
    require_operator(request)
    if not _same_site(request) or not hmac.compare_digest(form_token or "", csrf_token(request)):
        raise HTTPException(403, "This form was not sent from the operator console. Reload the "
                                 "page and try again.")
    limiter = _write_limiter(request)
    wait = limiter.hit(_client_key(request))
    if wait is not None:
        raise HTTPException(429, "Too many operator actions. Wait a minute and try again.",
                            headers={"Retry-After": str(math.ceil(wait))})


def _write_limiter(request: Request) -> SlidingWindowLimiter:
    state = request.app.state
    if getattr(state, "console_write_limiter", None) is None:
        state.console_write_limiter = SlidingWindowLimiter(ACTIONS_PER_MINUTE, window=60.0)
    return state.console_write_limiter
