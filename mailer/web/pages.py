"""Small HTML pages from Jinja2 templates in ``templates/web/`` (autoescaped, no JavaScript).

The one stylesheet is inlined in every page and allowed by its hash in the Content-Security-Policy,
so the policy needs neither 'unsafe-inline' nor a second request.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from mailer.render.templates import template_environment
from mailer.wire import MANAGE_PATH, UNSUBSCRIBE_PATH

# a link of a reader's own that did not work: its error page offers "Mail me my link"
READER_LINK_PREFIXES = (f"{MANAGE_PATH}/", f"{UNSUBSCRIBE_PATH}/")

# Colours meet WCAG AA contrast in both schemes (text #1a1a1a on #fdfdfd, links #0b57a4).
PAGE_CSS = """
:root{color-scheme:light dark}
body{margin:0;background:#fdfdfd;color:#1a1a1a;font:17px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:34rem;margin:0 auto;padding:2.5rem 1.25rem}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 1rem}
a{color:#0b57a4}
label{display:block;font-weight:600;margin:1rem 0 .35rem}
input[type=email],input[type=date]{box-sizing:border-box;width:100%;font:inherit;padding:.6rem .7rem;border:2px solid #555;border-radius:6px;background:#fff;color:#1a1a1a}
input[type=date]{width:auto;max-width:100%}
input:focus,button:focus{outline:3px solid #f0a000;outline-offset:2px}
button{font:inherit;font-weight:600;margin-top:1rem;padding:.65rem 1.3rem;border:0;border-radius:6px;background:#0b57a4;color:#fff;cursor:pointer}
button.danger{background:#a4160b}
.error{border-left:4px solid #a4160b;padding:.4rem .8rem;background:#fbeaea;color:#5c0c05}
.note{color:#444}
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
footer{margin-top:2.5rem;font-size:.9rem;color:#444}
pre{overflow-x:auto;padding:.8rem;border-radius:6px;background:#f0f0f0;font-size:.85rem}
pre.issue-text{white-space:pre-wrap;overflow-wrap:anywhere}
code{overflow-wrap:anywhere}
@media (prefers-color-scheme:dark){
body{background:#161616;color:#ececec}
a{color:#8ab8ff}
input[type=email],input[type=date]{background:#222;color:#ececec;border-color:#aaa}
button{background:#2f6fc0}
button.danger{background:#c0392b}
.error{background:#3a1512;color:#ffd9d4}
.note,footer{color:#bbb}
pre{background:#222}
}
""".strip()

PAGE_CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(PAGE_CSS.encode()).digest()).decode()


class Pages:
    """Renders ``templates/web/<name>.html`` with the shared layout values."""

    def __init__(self, templates_dir: Path, newsletter_name: str, site_url: str) -> None:
        self.env = template_environment(templates_dir / "web")
        # passed at each render, not set on the environment the console shares
        self.layout = {"css": Markup(PAGE_CSS), "newsletter_name": newsletter_name,
                       "site_url": site_url}

    def render(self, name: str, **context: object) -> str:
        return self.env.get_template(f"{name}.html").render(self.layout, **context)

    def response(
        self,
        name: str,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: object,
    ) -> HTMLResponse:
        response = HTMLResponse(self.render(name, **context), status_code=status_code, headers=headers)
        # pages behind tokens must not linger in shared caches or the back/forward cache
        response.headers.setdefault("cache-control", "no-store")
        return response


def wants_json(request: Request) -> bool:
    """JSON callers (a fetch from the site) get JSON; browsers and mail clients get pages."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    accept = request.headers.get("accept", "").lower()
    return content_type == "application/json" or (
        "application/json" in accept and "text/html" not in accept
    )


def error_response(
    request: Request,
    status_code: int,
    title: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if wants_json(request):
        return JSONResponse(
            {"status": "error", "error": message}, status_code=status_code, headers=headers
        )
    pages: Pages = request.app.state.pages
    return pages.response("error", status_code, headers=headers, title=title, message=message,
                          lost_link=request.url.path.startswith(READER_LINK_PREFIXES))
