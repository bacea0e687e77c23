"""The links in every mail: confirm (double opt-in) and unsubscribe (the "manage" page).

Rules every route keeps:
- A GET never changes state: mail scanners follow links. Changes happen on POST only.
- A link that was used, forged or has expired gets the error page; the one exception is a
  second click on the confirm link that made its reader active, which shows them subscribed
  again (mailer.store.confirmations: it reveals and revives nothing).
- Any POST to a valid unsubscribe link unsubscribes (RFC 8058 one-click), 200, idempotent.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response

from mailer import subscriptions
from mailer.domain import SubscriberStatus
from mailer.errors import UnknownSubscriber
from mailer.store.models import Subscriber
from mailer.web.state import app_engine as _engine, app_pages as _pages, app_settings as _settings
from mailer.web.state import client_address as _client_ip, media_type as _media_type
from mailer.wire import CONFIRM_PATH, ONE_CLICK_FIELD, ONE_CLICK_VALUE, UNSUBSCRIBE_PATH

router = APIRouter()

# what mail clients may send for RFC 8058 one-click (the RFC prefers multipart)
ONE_CLICK_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


# -- confirm -------------------------------------------------------------------------------------


@router.get(f"{CONFIRM_PATH}/{{token}}")
def confirm_page(request: Request, token: str) -> Response:
    link = subscriptions.confirm_link(_engine(request), _settings(request), token)
    if link.manage_url is not None:  # clicked again after it confirmed them
        return _confirmed(request, link)
    return _pages(request).response("confirm", email=link.subscriber.email, token=token)


@router.post(f"{CONFIRM_PATH}/{{token}}")
def confirm(request: Request, token: str) -> Response:
    ip = _client_ip(request)
    return _confirmed(request, subscriptions.confirm(_engine(request), _settings(request), token, ip))


def _confirmed(request: Request, link: subscriptions.ConfirmLink) -> Response:
    return _pages(request).response("confirmed", email=link.subscriber.email,
                                    manage_url=link.manage_url)


# -- unsubscribe (and the "manage subscription" page) --------------------------------------------


@router.get(f"{UNSUBSCRIBE_PATH}/{{token}}")
def unsubscribe_page(request: Request, token: str) -> Response:
    subscriber = subscriptions.subscriber_of(_engine(request), _settings(request), token)
    state = SubscriberStatus(subscriber.status)
    return _pages(request).response(
        "unsubscribe",
        email=subscriber.email,
        state=state.value,
        token=token,
        can_unsubscribe=state in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING),
    )


@router.post(f"{UNSUBSCRIBE_PATH}/{{token}}")
async def unsubscribe(request: Request, token: str) -> Response:
    """One-click (RFC 8058) and the page's button alike: 200, never a redirect, idempotent.

    Any POST to a valid link unsubscribes, whatever its body: the body only tells a mail client's
    one-click from the page's button for the consent record. A change that cannot be written
    (disk full, read-only database) is a 503, never a success page.
    """
    body, complete = await _read_bounded(request, _settings(request).max_body_bytes)
    source = "one-click" if await _is_one_click(request, body) else "web"
    headers = None if complete else {"Connection": "close"}  # the rest of the body is unread
    try:
        subscriber = await run_in_threadpool(_unsubscribe, request, token, source)
    except UnknownSubscriber:
        # erased since the mail went out: the reader wanted no more mail, and gets none
        return _pages(request).response("unsubscribed", headers=headers, email=None)
    return _pages(request).response("unsubscribed", headers=headers, email=subscriber.email)


async def _read_bounded(request: Request, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, and whether that was all of it."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), False
    return bytes(body), True


async def _is_one_click(request: Request, body: bytes) -> bool:
    if _media_type(request) not in ONE_CLICK_TYPES:
        return False

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await StarletteRequest(request.scope, replay).form()
    except Exception:
        return False
    return form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE


def _unsubscribe(request: Request, token: str, source: str) -> Subscriber:
    return subscriptions.unsubscribe(_engine(request), _settings(request), token, source)

