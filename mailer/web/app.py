"""FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from mailer.config import Settings, get_settings
from mailer.web import admin, public, webhook


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="mailer", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.include_router(public.router)
    app.include_router(webhook.router)
    app.include_router(admin.router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
