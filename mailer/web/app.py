"""FastAPI application factory: routes, defences and the error pages.

No request gets a 500 for a user's mistake: a MailerError becomes a friendly 4xx page (or JSON for
JSON callers), a malformed request a 4xx page. Operator-side failures (database, transport) answer
503 "try again later" without details.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, NotSupportedError, ProgrammingError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mailer.config import Settings, get_settings
from mailer.errors import (
    ConfigError,
    InvalidAddress,
    MailerError,
    RenderError,
    StoreError,
    SubscriberError,
    TokenExpired,
    TokenInvalid,
    TokenUsed,
    TransportError,
    UnknownSubscriber,
)
from mailer.store.db import get_engine
from mailer.web import (
    admin, clicks, console, editor_links, embed, links, manage, public, webhook,
)
from mailer.web.client_body import ClientBodyMiddleware
from mailer.web.console.render import ACTIONS_PER_MINUTE
from mailer.web.limiter import DatabaseWindowLimiter, FailedLoginGuard
from mailer.web.pages import PAGE_CSS_HASH, Pages, error_response
from mailer.web.security import (
    BodySizeLimitMiddleware,
    BodyTooLarge,
    SecurityHeadersMiddleware,
    UntrustedForwardedForWarning,
    content_security_policy,
    describe_limit,
    parse_networks,
    redact_access_log,
    security_headers,
)
from mailer.wire import (
    CLICK_PATH, CONFIRM_PATH, HOLD_PATH, MANAGE_PATH, PREVIEW_PAGE_PATH, SUBSCRIBE_PATH,
    UNSUBSCRIBE_PATH,
    WEBHOOK_PATH,
)

log = logging.getLogger("mailer.web")

PUBLIC_PREFIXES = (SUBSCRIBE_PATH, CONFIRM_PATH, UNSUBSCRIBE_PATH, MANAGE_PATH, HOLD_PATH,
                   PREVIEW_PAGE_PATH, CLICK_PATH + "/")  # "/l/": counted links, not "/login"
# A POST to an unsubscribe link unsubscribes whatever its body (RFC 8058 one-click): the route
# reads at most MAILER_MAX_BODY_BYTES of it itself instead of refusing a large one with a 413.
READS_OWN_BODY_PREFIX = UNSUBSCRIBE_PATH + "/"
# Seconds a client is asked to wait when the database cannot be written (disk full, read-only).
RETRY_AFTER_SECONDS = 60
# Database errors that are bugs (a constraint, bad SQL), not an unwritable or unreachable database.
DATABASE_BUGS = (IntegrityError, ProgrammingError, DataError, NotSupportedError)
# Everything else (the operator pages) gets a loose ceiling: their forms are small and sent by
# a logged-in operator.
OTHER_BODY_LIMIT = 1024 * 1024

# (status, page title) per error; the first matching class wins, so subclasses come first.
ERROR_PAGES: tuple[tuple[type[MailerError], int, str], ...] = (
    (TokenExpired, 410, "This link has expired"),
    (TokenUsed, 410, "This link was already used"),
    (TokenInvalid, 400, "This link is not valid"),
    (InvalidAddress, 422, "Check the address"),
    (UnknownSubscriber, 404, "Not on our list"),
    (SubscriberError, 400, "That did not work"),
    (StoreError, 503, "Please try again later"),
    (ConfigError, 503, "Please try again later"),
    (RenderError, 503, "Please try again later"),
    (TransportError, 503, "Please try again later"),
    (MailerError, 400, "That did not work"),
)

HTTP_TITLES = {
    400: "Bad request",
    404: "Page not found",
    405: "Method not allowed",
    408: "Too slow",
    413: "Too much data",
    415: "Unsupported format",
    422: "Check your input",
    429: "Too many requests",
}


def error_page_for(error: MailerError) -> tuple[int, str]:
    for cls, status, title in ERROR_PAGES:
        if isinstance(error, cls):
            return status, title
    return 400, "That did not work"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="mailer", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=_lifespan)
    _init_state(app, settings)
    app.include_router(embed.router)  # before public: /subscribe/embed is not a form post
    app.include_router(public.router)
    # before links: /confirm/address/<token> is the reader's page's, never a sign-up's token
    app.include_router(manage.router)
    app.include_router(links.router)
    app.include_router(editor_links.router)
    app.include_router(clicks.router)
    app.include_router(webhook.router)
    app.include_router(admin.router)
    app.include_router(console.router)  # the operator pages, behind admin's checks
    _add_error_handlers(app)
    _add_middleware(app, settings)
    redact_access_log()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # sign-ups accepted before a stop or a crash and not handled yet: handle them now
    await run_in_threadpool(public.handle_leftover_signups, app)
    yield


def _init_state(app: FastAPI, settings: Settings) -> None:
    app.state.settings = settings
    app.state.pages = Pages(settings.templates_dir, settings.newsletter_name, settings.site_url)
    _init_limiters(app, settings)
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    app.state.transport = None
    app.state.transport_lock = threading.Lock()
    app.state.sns_cert_fetcher = webhook.production_cert_fetcher()  # https, SNS hosts, cached


def _init_limiters(app: FastAPI, settings: Settings) -> None:
    """Every limit counts in the database: two `mailer serve` processes behind the proxy (or
    uvicorn workers) limit as one, and a restart forgets nothing."""

    def limiter(scope: str, limit: int, window: float) -> DatabaseWindowLimiter:
        return DatabaseWindowLimiter(scope, limit, window, secret=settings.secret_key,
                                     engine=lambda: get_engine(settings.database_url))

    state = app.state
    state.subscribe_limiter = limiter("subscribe", settings.subscribe_rate_per_ip, 60.0)
    state.signup_network_limiter = limiter(
        "signup-network", settings.confirm_mails_per_network, 3600.0)
    state.admin_failed_logins = FailedLoginGuard(
        per_network=limiter("login-failed", admin.FAILED_LOGINS_PER_MINUTE, 60.0),
        overall=limiter("login-failed-all", settings.admin_failed_logins_global, 3600.0))
    state.console_write_limiter = limiter("console-write", ACTIONS_PER_MINUTE, 60.0)
    state.editor_link_limiter = limiter("editor-link", editor_links.EDITOR_LINKS_PER_MINUTE, 60.0)
    state.manage_limiter = limiter("manage", manage.MANAGE_REQUESTS_PER_MINUTE, 60.0)
    state.address_mail_limiter = limiter("address-mail", manage.ADDRESS_MAILS_PER_HOUR, 3600.0)
    state.link_request_limiter = limiter("manage-link", manage.LINK_REQUESTS_PER_HOUR, 3600.0)
    state.link_mail_limiter = limiter("manage-link-mail", manage.LINK_MAILS_PER_HOUR, 3600.0)
    state.click_limiter = limiter("click", clicks.CLICKS_PER_MINUTE, 60.0)


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    def limit_for(path: str) -> int | None:
        if path.startswith(READS_OWN_BODY_PREFIX):
            return None
        if path == WEBHOOK_PATH:  # its one cap, webhook.MAX_BODY_BYTES, answered in its own JSON
            return None
        if path.startswith(PUBLIC_PREFIXES):
            return settings.max_body_bytes
        return max(settings.max_body_bytes, OTHER_BODY_LIMIT)

    async def too_large(scope: Scope, receive: Receive, send: Send) -> None:
        limit = limit_for(scope.get("path", "")) or settings.max_body_bytes
        response = _too_large_response(StarletteRequest(scope, receive), limit)
        await response(scope, receive, send)

    # innermost: the route's body reads get the deadline, its hang-ups one log line
    app.add_middleware(ClientBodyMiddleware, seconds=settings.http_body_timeout)
    # added last = outermost: the 413 answers get the security headers too
    app.add_middleware(BodySizeLimitMiddleware, limit_for=limit_for, too_large=too_large)
    if not settings.trusted_proxies:
        app.add_middleware(UntrustedForwardedForWarning, logger=log)
    headers = security_headers(content_security_policy([PAGE_CSS_HASH]))
    app.add_middleware(SecurityHeadersMiddleware, headers=headers)


def _too_large_response(request: Request, limit: int) -> Response:
    return error_response(
        request, 413, HTTP_TITLES[413],
        f"The request is larger than this page accepts ({describe_limit(limit)}).",
        headers={"Connection": "close"},
    )


def _try_later(request: Request) -> Response:
    return error_response(
        request, 503, "Please try again later",
        "Something on our side is not working right now. Please try again later.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MailerError)
    async def mailer_error(request: Request, error: MailerError) -> Response:
        status, title = error_page_for(error)
        if status >= 500:
            log.error("%s on %s %s: %s", type(error).__name__, request.method, request.url.path, error)
            return _try_later(request)
        return error_response(request, status, title, str(error) or title)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> Response:
        if isinstance(error, DATABASE_BUGS):
            raise error  # a bug: the 500 handler below, with its traceback in the log
        # disk full, read-only file, database gone: one line for the operator, never success
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        log.error("database unavailable on %s %s: %s", request.method, request.url.path, reason)
        return _try_later(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        title = HTTP_TITLES.get(error.status_code, "That did not work")
        message = error.detail if isinstance(error.detail, str) else title
        if error.status_code == 404:
            message = "There is no page at this address."
        elif error.status_code == 405:
            message = "This page cannot be used that way."
        return error_response(request, error.status_code, title, message, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, _error: RequestValidationError) -> Response:
        return error_response(request, 422, HTTP_TITLES[422], "Some of the data sent is not valid.")

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, error: BodyTooLarge) -> Response:
        return _too_large_response(request, error.limit)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _error: Exception) -> Response:
        # a bug: the traceback goes to the log (ServerErrorMiddleware re-raises), never the page
        return error_response(
            request, 500, "Something went wrong",
            "Something on our side went wrong. Please try again later.",
        )
