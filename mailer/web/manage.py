"""The reader's own page (issue 26): the footer's "Manage" link, ``/manage/<token>``.

A GET never changes anything (mail scanners follow links); the page's actions are POSTs behind
a confirmation. The one-click unsubscribe stays on its own link (List-Unsubscribe).
Each network gets MANAGE_REQUESTS_PER_MINUTE requests a minute, counted in the database like
the other public limits.

Change my address: the POST records the pending change (the same work for any address) and
answers the same whether the new address is free or already on the list; the mail (a link to a
free address, a notice to a taken one) is built and sent after the answer for both. Each
reader asks at most ADDRESS_MAILS_PER_HOUR times an hour, so the page mails nobody in bulk.
The link lands on ``/confirm/address/<token>``: a GET shows what it would change, the POST
makes the change and tells the old address.

Mail me my link (``/manage``): a reader whose mails with the link are gone types their
address. The answer is one page whatever the address (on the list, unknown, unsubscribed,
forgotten); only text that is no address at all gets the sign-up form's error. The mail (to an
address still mailed, at that address only) is decided, built and sent after the answer for
every address. Each network asks LINK_REQUESTS_PER_HOUR times an hour (a 429 that says nothing
about the address); each mailbox gets at most LINK_MAILS_PER_HOUR such mails an hour, beyond
which further requests are dropped silently.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from mailer import subscriptions
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import AddressChangeRefused, BadPause, InvalidAddress
from mailer.store.db import get_engine
from mailer.web.public import BAD_ADDRESS_MESSAGE, app_transport, clean_address_field
from mailer.web.state import app_engine as _engine, client_address as _client_ip
from mailer.web.state import check_network_rate, app_pages as _pages, app_settings as _settings
from mailer.wire import CONFIRM_ADDRESS_PATH, MANAGE_PATH

log = logging.getLogger("mailer.web")
router = APIRouter()

MANAGE_REQUESTS_PER_MINUTE = 30  # a reader clicking through their page; far below any guessing
ADDRESS_MAILS_PER_HOUR = 3  # "Change my address" per reader: a typo fixed, never a mail cannon
LINK_REQUESTS_PER_HOUR = 10  # "Mail me my link" per network: a household's readers, not a list
LINK_MAILS_PER_HOUR = 3  # link mails per mailbox: asked again after a slow inbox, never a flood
HONEYPOT_FIELD = "website"  # the sign-up form's trap: a bot fills it, a reader never sees it


def _check_rate(request: Request) -> None:
    check_network_rate(request, request.app.state.manage_limiter)


# -- mail me my link --------------------------------------------------------------------------

@router.get(MANAGE_PATH)
def link_form(request: Request) -> Response:
    """The form to ask for the link to one's page; this GET changes nothing."""
    _check_rate(request)
    return _pages(request).response("manage_link", email="", error=None)


@router.post(MANAGE_PATH)
async def mail_me_my_link(request: Request, background: BackgroundTasks) -> Response:
    _check_rate(request)
    check_network_rate(request, request.app.state.link_request_limiter,
                       "Your network asked for many links in the last hour. Please use a link "
                       "already mailed, or try again later.")
    form = await request.form()
    typed = form.get("email")
    if str(form.get(HONEYPOT_FIELD) or "").strip():
        return _pages(request).response("manage_link_sent")  # a bot: the same answer, no mail
    try:
        address = subscriptions.link_request_address(clean_address_field(typed))
    except InvalidAddress as error:
        shown = typed if isinstance(typed, str) and len(typed) <= 320 else ""
        return _pages(request).response("manage_link", 422, email=shown,
                                        error=str(error) or BAD_ADDRESS_MESSAGE)
    # on the list or not, the same answer now and the same work after it
    background.add_task(mail_manage_link, request.app, address)
    return _pages(request).response("manage_link_sent")


def mail_manage_link(app, address: str) -> None:
    """After the answer: one hit of the mailbox's hourly allowance, then the mail if it is due
    (over the allowance, nothing, and nobody is told)."""
    settings = app.state.settings
    try:
        if app.state.link_mail_limiter.hit(subscriptions.link_mail_key(address)) is not None:
            return
        subscriptions.mail_manage_link(get_engine(settings.database_url), settings,
                                       app_transport(app), address)
    except Exception:
        log.exception("a requested link to a reader's page was not sent")


# -- the reader's page --------------------------------------------------------------------------

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
        pending_email=page.subscriber.new_email if page.subscriber.new_email_nonce else None,
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


# -- change my address -------------------------------------------------------------------------

@router.get(f"{MANAGE_PATH}/{{token}}/address")
def address_form(request: Request, token: str) -> Response:
    """The form alone (the page has it too); this GET changes nothing."""
    _check_rate(request)
    page = subscriptions.reader_page(_engine(request), _settings(request), token)
    return _pages(request).response("manage_address", email=page.subscriber.email, token=token,
                                    typed="", error=None)


@router.post(f"{MANAGE_PATH}/{{token}}/address")
async def change_address(request: Request, token: str, background: BackgroundTasks) -> Response:
    _check_rate(request)
    typed = (await request.form()).get("email")
    try:
        raw = clean_address_field(typed)
        _check_address_allowance(request, token)
        change = await run_in_threadpool(subscriptions.request_address_change, _engine(request),
                                         _settings(request), token, raw)
    except (InvalidAddress, AddressChangeRefused) as error:
        page = await run_in_threadpool(subscriptions.reader_page, _engine(request),
                                       _settings(request), token)
        shown = typed if isinstance(typed, str) and len(typed) <= 320 else ""
        status = 422 if isinstance(error, InvalidAddress) else 400
        return _pages(request).response("manage_address", status, email=page.subscriber.email,
                                        token=token, typed=shown, error=str(error))
    # free or taken, the same answer now and the same work after it (see the module docstring)
    background.add_task(mail_address_change, request.app, change)
    return _pages(request).response("manage_address_sent", email=change.old, token=token)


def _check_address_allowance(request: Request, token: str) -> None:
    """The reader's hourly allowance, keyed by their page: the same for any new address."""
    retry_after = request.app.state.address_mail_limiter.hit(f"reader-page:{token}")
    if retry_after is not None:
        raise HTTPException(429, "You asked to change the address several times in the last "
                                 "hour. Please use the link already mailed, or try again later.",
                            headers={"Retry-After": str(max(1, round(retry_after)))})


def mail_address_change(app, change: subscriptions.ChangeRequest) -> None:
    settings = app.state.settings
    try:
        subscriptions.mail_address_change(get_engine(settings.database_url), settings,
                                          app_transport(app), change)
    except Exception:
        log.exception("address change mail for subscriber %s was not sent", change.subscriber_id)


@router.get(f"{CONFIRM_ADDRESS_PATH}/{{token}}")
def confirm_address_page(request: Request, token: str) -> Response:
    """What the link would change, and one button; this GET changes nothing (mail scanners)."""
    _check_rate(request)
    change = subscriptions.address_change_link(_engine(request), _settings(request), token)
    return _pages(request).response("confirm_address", old=change.old_shown, new=change.new,
                                    token=token)


@router.post(f"{CONFIRM_ADDRESS_PATH}/{{token}}")
def confirm_address(request: Request, token: str, background: BackgroundTasks) -> Response:
    _check_rate(request)
    change = subscriptions.confirm_address_change(_engine(request), _settings(request), token,
                                                  _client_ip(request))
    background.add_task(mail_address_changed, request.app, change)
    return _pages(request).response("address_changed", new=change.new,
                                    manage_url=change.manage_url)


def mail_address_changed(app, change: subscriptions.AddressChange) -> None:
    try:
        subscriptions.mail_address_changed(app.state.settings, app_transport(app), change)
    except Exception:
        log.exception("the notice to the old address of a changed subscription was not sent")
