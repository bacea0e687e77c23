"""The two links in the editors' preview mail (issue 25 §2): ``/hold/<token>`` and
``/preview/<token>``, public pages gated by a signed token (mailer.tokens.make_issue_token).

Rules every route keeps (as mailer.web.links):
- A GET never changes state: mail scanners and link previews follow links. Only the Hold
  page's button (a POST) holds the readers' send.
- A forged, expired or other-purpose token gets the error page (400 / 410) and changes nothing.
- Each network gets EDITOR_LINKS_PER_MINUTE requests a minute, counted in the database like the
  other public limits; the pages carry the same security headers (the app's middleware).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from mailer import advance_copy
from mailer.web.state import app_engine as _engine
from mailer.web.state import check_network_rate, app_pages as _pages, app_settings as _settings
from mailer.wire import HOLD_PATH, PREVIEW_PAGE_PATH

router = APIRouter()

# The mail as readers see it, on its own page: its inline styles need 'unsafe-inline', which no
# other page gets. It runs no script (the sandbox allows none, and the finished HTML passed the
# render's allow-list: no handler, no script, no url() in a style attribute), posts no form,
# and cannot be framed.
MAIL_PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                 "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; "
                 "sandbox allow-popups allow-popups-to-escape-sandbox "
                 "allow-top-navigation-by-user-activation")

EDITOR_LINKS_PER_MINUTE = 30  # a few editors clicking about; far below any guessing


def _check_rate(request: Request) -> None:
    check_network_rate(request, request.app.state.editor_link_limiter)


@router.get(f"{HOLD_PATH}/{{token}}")
def hold_page(request: Request, token: str) -> Response:
    _check_rate(request)
    view = advance_copy.read_issue_link(_engine(request), _settings(request), token, "hold")
    return _pages(request).response("hold", view=view, token=token)


@router.post(f"{HOLD_PATH}/{{token}}")
async def hold(request: Request, token: str) -> Response:
    _check_rate(request)
    view = await run_in_threadpool(advance_copy.hold_from_link, _engine(request),
                                   _settings(request), token)
    status = 409 if view.send_started else 200  # too late: the readers' send has started
    return _pages(request).response("hold", status, view=view, token=token)


@router.get(f"{PREVIEW_PAGE_PATH}/{{token}}")
def preview_page(request: Request, token: str) -> Response:
    _check_rate(request)
    engine, settings = _engine(request), _settings(request)
    view = advance_copy.read_issue_link(engine, settings, token, "preview")
    rendered = advance_copy.rendered_for_page(settings, view.issue_number)
    return _pages(request).response("issue_preview", view=view, subject=rendered.subject,
                                    text=rendered.text, token=token)


@router.get(f"{PREVIEW_PAGE_PATH}/{{token}}/mail")
def preview_mail(request: Request, token: str) -> Response:
    _check_rate(request)
    engine, settings = _engine(request), _settings(request)
    view = advance_copy.read_issue_link(engine, settings, token, "preview")
    html = advance_copy.mail_html_for_page(settings, view.issue_number, view.editor)
    return HTMLResponse(html, headers={"content-security-policy": MAIL_PAGE_CSP,
                                       "cache-control": "no-store"})
