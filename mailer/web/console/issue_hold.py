"""The issue page's hold and timeline (issue 25 §2): where the issue stands on its way to the
readers (found, preview and corrections sent, held and released by whom, planned send, sent),
and the Release button for an issue an editor held.

Its own module and template partial (``admin_issue_timeline.html``), so the issue page's other
parts change apart from it. An issue held before any send has no campaign: its page then shows
only this part (``admin_issue_waiting.html``) instead of a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailer.store import issue_timeline
from mailer.store.db import get_engine
from mailer.web.console.render import check_write, operator_name, page, settings_of

router = APIRouter(include_in_schema=False)

STEP_TEXT = {
    issue_timeline.FOUND: "Found by a send run",
    issue_timeline.PREVIEW: "Preview sent",
    issue_timeline.CORRECTION: "Correction preview sent",
    issue_timeline.HELD: "Held",
    issue_timeline.RELEASED: "Released",
    "planned": "Planned send",
    "started": "Send started",
    "sent": "Sent",
}


def timeline_context(request: Request, number: int) -> dict:
    """What the partial needs: the steps so far and the hold in force, if any."""
    engine = get_engine(settings_of(request).database_url)
    return {"timeline": issue_timeline.timeline(engine, number),
            "hold": issue_timeline.hold_of(engine, number), "step_text": STEP_TEXT,
            "timeline_number": number, "released": request.query_params.get("done") == "release"}


def waiting_page(request: Request, number: int) -> HTMLResponse:
    """The page of an issue not sent yet: its timeline, or a 404 when mailer never met it."""
    context = timeline_context(request, number)
    if not context["timeline"]:
        raise HTTPException(404, f"Issue {number} has not been sent.")
    return page(request, "admin_issue_waiting.html", number=number, **context)


@router.post("/admin/issues/{number}/release")
def release(request: Request, number: int, csrf_token: str = Form("")) -> Response:
    check_write(request, csrf_token)
    engine = get_engine(settings_of(request).database_url)
    issue_timeline.release(engine, number, f"{operator_name(request)} (console)")
    # Released or not held any more (another operator was quicker): the page says which.
    return RedirectResponse(f"/admin/issues/{number}?done=release", status_code=303)
