"""Console pages for readers and events: what happened to this reader, and what SES told us.

Operator actions take two steps: the reader's page links to a confirmation page that names the
reader and the consequence and asks for a reason; only its POST (CSRF token, same site, rate
limited) changes anything.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailer.errors import SubscriberError
from mailer.reader_actions import ACTIONS, allowed_actions, perform_action
from mailer.reads.reader_records import (
    consent_record,
    event_kinds,
    event_payload,
    latest_events,
    list_readers,
    reader_record,
)
from mailer.reads.subscriber_figures import subscribers_by_status
from mailer.store.db import get_engine, session
from mailer.web.admin import require_operator
from mailer.web.console.render import check_write, operator_name, page, settings_of

router = APIRouter(include_in_schema=False)

MAX_QUERY = 320
ACTION_TEXT = {
    "unsuppress": ("Unsuppress", "They were suppressed for repeated soft (transient) bounces. "
                                 "They will receive the next issue again; if their mailbox still "
                                 "bounces, they are suppressed again."),
    "unsubscribe": ("Unsubscribe", "They stop receiving the newsletter. They can subscribe "
                                   "again through the form."),
    "forget": ("Forget", "The address, its history and its deliveries are erased; only a keyed "
                         "hash stays so that it is never imported again. This cannot be undone."),
}


def _db(request: Request):
    return session(get_engine(settings_of(request).database_url))


def _bad_cursor(what: str) -> HTTPException:
    return HTTPException(400, f"That “older” link was not made by this page; start from the "
                              f"latest {what} at /admin/{what}.")


def id_cursor(before: str, what: str) -> int | None:
    """``before`` of an "Older readers" or "Older events" link: the id of the last row shown."""
    if not before:
        return None
    if not before.isdigit() or int(before) < 1:
        raise _bad_cursor(what)
    return int(before)


@router.get("/admin/readers", response_class=HTMLResponse)
def readers(request: Request, q: str = "", status: str = "", before: str = "",
            done: str = "") -> HTMLResponse:
    require_operator(request)
    query = q.strip()[:MAX_QUERY]
    cursor = id_cursor(before, "readers")
    with _db(request) as db:
        counts = subscribers_by_status(db)
        chosen = status if status in counts else ""
        found = list_readers(db, query, chosen or None, cursor)
    return page(request, "admin_readers.html", query=query, found=found, counts=counts,
                status=chosen, older_page=cursor is not None, forgotten=done == "forget")


def _record_or_404(db, reader_id: int):
    record = reader_record(db, reader_id)
    if record is None:
        raise HTTPException(404, "There is no such reader (forgotten, or never there).")
    return record


@router.get("/admin/readers/{reader_id}", response_class=HTMLResponse)
def reader(request: Request, reader_id: int, done: str = "") -> HTMLResponse:
    require_operator(request)
    with _db(request) as db:
        record = _record_or_404(db, reader_id)
        actions = allowed_actions(record)
        consent = consent_record(record.subscriber)
    return page(request, "admin_reader.html", record=record, reader=record.subscriber,
                actions=actions, consent=consent, action_text=ACTION_TEXT,
                done=ACTION_TEXT.get(done, ("", ""))[0])


def _confirm_page(request: Request, reader_id: int, action: str, *, reason: str = "",
                  error: str = "", status_code: int = 200) -> HTMLResponse:
    with _db(request) as db:
        record = _record_or_404(db, reader_id)
        allowed = action in allowed_actions(record)
    return page(request, "admin_reader_action.html", status_code=status_code, record=record,
                reader=record.subscriber, action=action, allowed=allowed, reason=reason,
                error=error, title=ACTION_TEXT[action][0], consequence=ACTION_TEXT[action][1])


@router.get("/admin/readers/{reader_id}/{action}", response_class=HTMLResponse)
def confirm_action(request: Request, reader_id: int, action: str) -> HTMLResponse:
    require_operator(request)
    if action not in ACTIONS:
        raise HTTPException(404, "There is no such action.")
    return _confirm_page(request, reader_id, action)


@router.post("/admin/readers/{reader_id}/{action}")
def do_action(request: Request, reader_id: int, action: str,
              reason: str = Form(""), csrf_token: str = Form("")) -> Response:
    check_write(request, csrf_token)
    if action not in ACTIONS:
        raise HTTPException(404, "There is no such action.")
    try:
        with _db(request) as db:
            perform_action(db, reader_id, action, reason=reason, operator=operator_name(request),
                           secret=settings_of(request).secret_key)
    except SubscriberError as error:
        return _confirm_page(request, reader_id, action, reason=reason[:500], error=str(error),
                             status_code=422)
    target = ("/admin/readers?done=forget" if action == "forget"
              else f"/admin/readers/{reader_id}?done={action}")
    return RedirectResponse(target, status_code=303)


@router.get("/admin/events", response_class=HTMLResponse)
def events(request: Request, kind: str = "", before: str = "") -> HTMLResponse:
    require_operator(request)
    cursor = id_cursor(before, "events")
    with _db(request) as db:
        kinds = event_kinds(db)
        chosen = kind if kind in kinds else ""
        found = latest_events(db, chosen or None, cursor)
    return page(request, "admin_events.html", kinds=kinds, kind=chosen, rows=found.rows,
                older=found.older, older_page=cursor is not None)


@router.get("/admin/events/{event_id}", response_class=HTMLResponse)
def event(request: Request, event_id: int) -> HTMLResponse:
    require_operator(request)
    with _db(request) as db:
        record = event_payload(db, event_id)
        if record is None:
            raise HTTPException(404, "There is no such event.")
        try:
            raw = json.dumps(json.loads(record.raw), indent=2, ensure_ascii=False)
        except ValueError:
            raw = record.raw
    return page(request, "admin_event.html", event=record, raw=raw)
