"""What the public routes read from the app they run in: its settings, pages and database, and
the facts of a request they all need (its media type, the client's address behind the proxy)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from mailer.config import Settings
from mailer.store.db import get_engine
from mailer.web.pages import Pages
from mailer.web.security import client_ip, rate_limit_key


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


def app_pages(request: Request) -> Pages:
    return request.app.state.pages


def app_engine(request: Request):
    return get_engine(app_settings(request).database_url)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def client_address(request: Request) -> str:
    return client_ip(request, request.app.state.trusted_proxies)


def check_network_rate(request: Request, limiter,
                       message: str = "Too many requests from your network. Please wait a "
                                      "minute.") -> None:
    """One hit of ``limiter`` for the request's network; over its allowance, a 429 with
    Retry-After (the public link pages: the reader's page, editors' links, counted links)."""
    retry_after = limiter.hit(rate_limit_key(client_address(request)))
    if retry_after is not None:
        raise HTTPException(429, message,
                            headers={"Retry-After": str(max(1, round(retry_after)))})
