"""The counted links (issue 25 §1, MAILER_CLICK_COUNTS): ``/l/<issue>/<n>`` redirects to the URL
recorded for that number when the issue's campaign started, and adds one to its hourly counter.

Rules the route keeps:
- A number never issued answers a plain 404 and counts nothing; it says nothing about which
  issues or numbers exist.
- A known one answers 302 to its URL, ``Referrer-Policy: no-referrer`` (the site it leads to does
  not learn the counter's address) and ``Cache-Control: no-store`` (every click reaches us).
- HEAD, prefetches and known scanners' user agents count as machine hits, not clicks
  (:func:`mailer.render.links.is_machine`).
- Nothing about the request is stored: no IP, no user agent, no reader. The only write is the
  (issue, link, hour, machine) counter, plus the per-network rate limit's keyed hash.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from mailer.domain import utcnow
from mailer.render.links import is_machine
from mailer.store.link_counts import count_click, link_target
from mailer.web.state import app_engine as _engine
from mailer.web.state import check_network_rate
from mailer.wire import CLICK_PATH

router = APIRouter()

# A whole office behind one address clicking through an issue stays well inside this; a script
# walking the numbers does not.
CLICKS_PER_MINUTE = 120
NUMBER_DIGITS = 9  # issue and link numbers; longer is never issued (and overflows no column)
NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def _check_rate(request: Request) -> None:
    check_network_rate(request, request.app.state.click_limiter)


def _number(part: str) -> int | None:
    if not part.isascii() or not part.isdigit() or len(part) > NUMBER_DIGITS:
        return None
    return int(part)


def not_found() -> Response:
    return Response("Not Found", status_code=404, media_type="text/plain",
                    headers={"cache-control": "no-store"})


@router.api_route(f"{CLICK_PATH}/{{issue}}/{{n}}", methods=["GET", "HEAD"])
def follow(request: Request, issue: str, n: str) -> Response:
    _check_rate(request)
    issue_number, link = _number(issue), _number(n)
    if issue_number is None or link is None:
        return not_found()
    engine = _engine(request)
    url = link_target(engine, issue_number, link)
    if url is None:
        return not_found()
    headers = request.headers
    machine = is_machine(request.method, headers.get("user-agent"), headers.get("purpose"),
                         headers.get("sec-purpose"))
    count_click(engine, issue_number, link, machine, utcnow())
    return Response(status_code=302, headers={"location": url, **NO_STORE})
