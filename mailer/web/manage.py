"""The reader's own page (issue 26): the footer's "Manage" link, ``/manage/<token>``.

A GET never changes anything (mail scanners follow links); the page's actions are POSTs behind
a confirmation. The one-click unsubscribe stays on its own link (List-Unsubscribe).
Each network gets MANAGE_REQUESTS_PER_MINUTE requests a minute, counted in the database like
the other public limits.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from mailer import subscriptions
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import BadPause
from mailer.web.state import app_engine as _engine
from mailer.web.state import check_network_rate, app_pages as _pages, app_settings as _settings
from mailer.wire import MANAGE_PATH

router = APIRouter()

MANAGE_REQUESTS_PER_MINUTE = 30  # a reader clicking through their page; far below any guessing


def _check_rate(request: Request) -> None:
    check_network_rate(request, request.app.state.manage_limiter)


@router.get(f"{MANAGE_PATH}/{{token}}")
def manage_page(request: Request, token: str) -> Response:
    _check_rate(request)
    page = subscriptions.reader_page(_engine(request), _settings(request), token)
    state = SubscriberStatus(page.subscriber.status)
    return _pages(request).response(
        "manage",
        email=page.subscriber.email,
        state=state.value,
        since=page.status_since.strftime("%-d %B %Y"),
        unsubscribe_token=page.unsubscribe_token,
        can_unsubscribe=state in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING),
        token=token,
        paused_until=_paused_until(page.subscriber.paused_until),
        pause_min=(utcnow().date() + timedelta(days=1)).isoformat(),
        pause_max=(utcnow().date() + subscriptions.MAX_PAUSE).isoformat(),
    )


def _paused_until(value) -> str | None:
    if value is None or value <= utcnow():  # over: the page offers a new pause
        return None
    return value.strftime("%-d %B %Y")


@router.post(f"{MANAGE_PATH}/{{token}}/pause")
async def pause(request: Request, token: str) -> Response:
    """Pause until the picked day (field ``until``, YYYY-MM-DD), or resume (``until`` empty)."""
    _check_rate(request)
    form = await request.form()
    until = _day(str(form.get("until") or ""))
    subscriptions.pause_reader(_engine(request), _settings(request), token, until)
    return RedirectResponse(f"{MANAGE_PATH}/{token}", status_code=303)


def _day(text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadPause("Pick the day the pause ends, as a date (YYYY-MM-DD).") from None


@router.post(f"{MANAGE_PATH}/{{token}}/export")
def download_my_data(request: Request, token: str) -> Response:
    """A JSON file of everything held about the reader. A POST (the page's button), so a mail
    scanner following links never fetches anyone's data."""
    _check_rate(request)
    record = subscriptions.export_reader(_engine(request), _settings(request), token)
    body = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    return Response(body, media_type="application/json", headers={
        "content-disposition": 'attachment; filename="my-newsletter-data.json"',
        "cache-control": "no-store",
    })


@router.get(f"{MANAGE_PATH}/{{token}}/erase")
def erase_confirmation(request: Request, token: str) -> Response:
    """The confirmation before erasing: one button; this GET changes nothing."""
    _check_rate(request)
    page = subscriptions.reader_page(_engine(request), _settings(request), token)
    return _pages(request).response("manage_erase", email=page.subscriber.email, token=token)


@router.post(f"{MANAGE_PATH}/{{token}}/erase")
def erase_me(request: Request, token: str) -> Response:
    _check_rate(request)
    report = subscriptions.erase_reader(_engine(request), _settings(request), token)
    return _pages(request).response("manage_erased", email=report.email,
                                    history_rows=report.history_rows,
                                    deliveries=report.deliveries,
                                    events=report.events_redacted)
