"""Public routes: the site's root and its subscribe form (the links in every mail are
mailer.web.links).

Rules every route keeps:
- ``POST /subscribe`` answers the same for new, pending, active and unsubscribed addresses, so
  nobody can learn who reads the newsletter from it, and in the same time: while the reader
  waits it only queues the request (mailer.store.signups, the same work for every address).
- Each network (an IPv4 address, an IPv6 /64) gets MAILER_CONFIRM_MAILS_PER_NETWORK sign-ups
  an hour that may lead to a confirmation mail, far below the hourly cap for everyone: an
  abuser needs many networks to mail many strangers or to pause the form.
- A GET never changes state. Changes happen on POST only.
- The subscriber row and the confirmation mail follow after the answer, in the background; a
  transport failure is logged and never reaches the client.
- A database that cannot be written is a 503 with Retry-After (mailer.web.app), never a success.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, RedirectResponse, Response

from mailer.addresses import MAX_ADDRESS_LENGTH  # the one limit: longer is never stored
from mailer.errors import InvalidAddress
from mailer import subscriptions
from mailer.store import signups
from mailer.store.signups import SignupRefused
from mailer.store.db import get_engine
from mailer.web.embed import RETURN_FIELD, allowed_return_url
from mailer.web.limiter import SlidingWindowLimiter
from mailer.web.security import rate_limit_key
from mailer.web.state import app_engine as _engine, app_pages as _pages, app_settings as _settings
from mailer.web.state import client_address as _client_ip, media_type as _media_type
from mailer.wire import SUBSCRIBE_PATH

log = logging.getLogger("mailer.web")
router = APIRouter()

FORM_TYPES = ("application/x-www-form-urlencoded",)
JSON_TYPES = ("application/json",)
HONEYPOT_FIELD = "website"
ACCEPTED_MESSAGE = (
    "Check your inbox: if the address can receive the newsletter, a confirmation link is on its way."
)
BAD_ADDRESS_MESSAGE = "That does not look like an e-mail address. Please check it and try again."


# -- helpers -------------------------------------------------------------------------------------


def _check_rate(request: Request) -> None:
    retry_after = request.app.state.subscribe_limiter.hit(rate_limit_key(_client_ip(request)))
    if retry_after is not None:
        raise HTTPException(
            429,
            "Too many sign-up attempts from your network. Please wait a minute and try again.",
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )


NETWORK_BUSY_MESSAGE = ("We received unusually many sign-ups from your network in the last hour. "
                        "Please try again later.")


def _network_allowance(request: Request) -> SlidingWindowLimiter:
    """Sign-ups that led to a confirmation mail, per network and hour (in process memory)."""
    state = request.app.state
    with state.transport_lock:
        if getattr(state, "signup_network_limiter", None) is None:
            state.signup_network_limiter = SlidingWindowLimiter(
                _settings(request).confirm_mails_per_network, window=3600.0)
        return state.signup_network_limiter


def _check_network_allowance(request: Request) -> bool:
    """A network that used up its hour's allowance waits; a known address and a new one alike,
    so the refusal says nothing about the address, and other networks are not held back.
    True when this is the network's first sign-up of the hour."""
    allowance, network = _network_allowance(request), rate_limit_key(_client_ip(request))
    wait = allowance.blocked(network)
    if wait is not None:
        raise SignupRefused(NETWORK_BUSY_MESSAGE, max(60, round(wait)), paused=False)
    return allowance.count(network) == 0


def _spend_network_allowance(request: Request) -> None:
    _network_allowance(request).record(rate_limit_key(_client_ip(request)))


def clean_address_field(value: object) -> str:
    """The raw address as typed: one string, not absurdly long, no control characters.

    CR/LF in an address would be a header injection by the time it reached a mail header; any
    control character is refused here, before the store's own validation.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidAddress("Please enter your e-mail address.")
    if len(value) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(BAD_ADDRESS_MESSAGE)
    # Cs: a lone surrogate, which JSON's "\\ud800" can carry and no mail system can encode
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in value):
        raise InvalidAddress(BAD_ADDRESS_MESSAGE)
    return value.strip()


async def _read_subscribe_fields(request: Request) -> dict[str, Any]:
    media_type = _media_type(request)
    if media_type in FORM_TYPES:
        return _single_values(await request.form())
    if media_type in JSON_TYPES:
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise HTTPException(400, "The request body is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise HTTPException(422, 'Send a JSON object like {"email": "you@example.org"}.')
        return _refuse_surrogates(payload)
    raise HTTPException(
        415, "Send the form as application/x-www-form-urlencoded, or JSON as application/json."
    )


def _has_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any(unicodedata.category(char) == "Cs" for char in value)
    if isinstance(value, dict):
        return any(_has_surrogate(key) or _has_surrogate(item) for key, item in value.items())
    return isinstance(value, list) and any(_has_surrogate(item) for item in value)


def _refuse_surrogates(payload: dict[str, Any]) -> dict[str, Any]:
    """JSON's "\\ud800" is a lone surrogate, text no answer or template can encode: in the
    address it is refused as a bad address (clean_address_field), anywhere else as bad JSON."""
    if _has_surrogate({key: value for key, value in payload.items() if key != "email"}):
        raise HTTPException(400, "The request body is not valid JSON: it has a lone surrogate.")
    return payload


def _single_values(form: FormData) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in form.keys():
        values = form.getlist(key)
        # a repeated field is ambiguous: which address did they mean?
        fields[key] = values[0] if len(values) == 1 else values
    return fields


def _honeypot_filled(fields: dict[str, Any]) -> bool:
    value = fields.get(HONEYPOT_FIELD)
    return bool(value.strip()) if isinstance(value, str) else value not in (None, "", [], {})


def _accepted(request: Request, fields: dict[str, Any]) -> Response:
    """The one answer to every acceptable sign-up, whatever the address's state.

    A form from another site (the /subscribe/embed snippet) may name a page to return to; it is
    followed only when it is on MAILER_ALLOWED_RETURN_URLS, never an open redirect.
    """
    if _media_type(request) in JSON_TYPES:
        return JSONResponse({"status": "ok", "message": ACCEPTED_MESSAGE}, status_code=202)
    back = allowed_return_url(fields.get(RETURN_FIELD), _settings(request).allowed_return_urls)
    return RedirectResponse(back or f"{SUBSCRIBE_PATH}/thanks", status_code=303)


def _invalid_address(request: Request, error: InvalidAddress, typed: object) -> Response:
    message = str(error) or BAD_ADDRESS_MESSAGE
    if _media_type(request) in JSON_TYPES:
        return JSONResponse({"status": "error", "error": message}, status_code=422)
    shown = typed if isinstance(typed, str) and len(typed) <= MAX_ADDRESS_LENGTH else ""
    return _pages(request).response("subscribe", 422, email=shown, error=message)


def app_transport(app):
    """The app's transport, opened on first use (the reader's page mails through it too)."""
    state = app.state
    with state.transport_lock:
        if state.transport is None:
            state.transport = subscriptions.open_transport(state.settings)
        return state.transport


def send_confirmation(app, subscriber_id: int | None, to: str, token: str) -> None:
    """Render and hand over the confirmation mail; runs after the response has gone out."""
    try:
        subscriptions.send_confirmation(app.state.settings, app_transport(app), to, token)
    except Exception:
        log.exception("confirmation mail for subscriber %s was not sent", subscriber_id)


# -- subscribe -----------------------------------------------------------------------------------


@router.api_route("/", methods=["GET", "HEAD"])  # HEAD too: uptime checks ask for the root
def root() -> Response:
    """A reader who types the bare host name came to subscribe: there is nothing else to see."""
    return RedirectResponse(SUBSCRIBE_PATH, status_code=303)


@router.get(SUBSCRIBE_PATH)
def subscribe_form(request: Request) -> Response:
    return _pages(request).response("subscribe", email="", error=None)


@router.get(f"{SUBSCRIBE_PATH}/thanks")
def subscribe_thanks(request: Request) -> Response:
    return _pages(request).response("thanks")


@router.post(SUBSCRIBE_PATH)
async def subscribe(request: Request, background: BackgroundTasks) -> Response:
    _check_rate(request)
    fields = await _read_subscribe_fields(request)
    if _honeypot_filled(fields):
        return _accepted(request, fields)  # a bot: let it believe it worked, store nothing
    typed = fields.get("email")
    try:
        raw_email = clean_address_field(typed)
        first_from_network = _check_network_allowance(request)
        request_id = await run_in_threadpool(_queue_signup, request, raw_email,
                                             first_from_network)
    except InvalidAddress as error:
        return _invalid_address(request, error, typed)
    except SignupRefused as error:
        return _refused(request, error)
    request.app.state.signups_paused_logged = False  # accepted again: log the next pause
    if request_id is not None:  # a confirmation mail may follow: it counts for the network
        _spend_network_allowance(request)
        background.add_task(handle_queued_signup, request.app, request_id)
    return _accepted(request, fields)


def _queue_signup(request: Request, raw_email: str, first_from_network: bool) -> int | None:
    """The same work for every address (see mailer.store.signups); the rest follows the answer."""
    return subscriptions.queue_signup(_engine(request), _settings(request), raw_email,
                                      _client_ip(request), first_from_network=first_from_network)


def _refused(request: Request, error: SignupRefused) -> Response:
    if error.paused:
        _warn_paused_once(request.app)
    status = 503 if error.paused else 429
    headers = {"Retry-After": str(error.retry_after)}
    if _media_type(request) in JSON_TYPES:
        return JSONResponse({"status": "error", "error": str(error)}, status_code=status,
                            headers=headers)
    return _pages(request).response("subscribe", status, headers=headers, email="",
                                    error=str(error))


def _warn_paused_once(app) -> None:
    state = app.state
    with state.transport_lock:
        if getattr(state, "signups_paused_logged", False):
            return
        state.signups_paused_logged = True
    log.warning("sign-ups are paused: %s confirmation requests in the last hour reached "
                "MAILER_CONFIRM_MAILS_PER_HOUR; readers are asked to try again later, except a "
                "network's first sign-up of the hour (up to as many again)",
                state.settings.confirm_mails_per_hour)


def signup_pressure(app) -> signups.SignupPressure:
    """Sign-ups in the last hour against the hourly cap: what /admin shows the operator."""
    settings = app.state.settings
    return subscriptions.signup_pressure(get_engine(settings.database_url), settings)


def handle_queued_signup(app, request_id: int) -> None:
    """After the answer: the subscriber row, and the confirmation mail when one is due."""
    settings = app.state.settings
    try:
        outcome = subscriptions.handle_signup(get_engine(settings.database_url), settings,
                                              request_id)
    except Exception as error:
        log.error("sign-up request %s is kept for later: %s", request_id, _first_line(error))
        return
    if outcome is not None and outcome.confirm_token:
        subscriber = outcome.subscriber
        send_confirmation(app, subscriber.id, subscriber.email, outcome.confirm_token)


def handle_leftover_signups(app) -> None:
    """Requests accepted before a stop or crash and not yet handled: nobody is dropped."""
    settings = app.state.settings
    try:
        leftovers = subscriptions.queued_requests(get_engine(settings.database_url))
    except Exception as error:
        log.error("cannot read queued sign-ups: %s", _first_line(error))
        return
    for request_id in leftovers:
        handle_queued_signup(app, request_id)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
