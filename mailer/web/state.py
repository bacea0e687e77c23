"""What the public routes read from the app they run in: its settings, pages and database, and
the facts of a request they all need (its media type, the client's address behind the proxy)."""

from __future__ import annotations

from fastapi import Request

from mailer.config import Settings
from mailer.store.db import get_engine
from mailer.web.pages import Pages
from mailer.web.security import client_ip


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
