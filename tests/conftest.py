"""Shared fixtures. Peer processes (moto_server, uvicorn, chromium) live in tests/plugins/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.plugins.ses_peer",
    "tests.plugins.web_peer",
    "tests.plugins.browser",
    "tests.plugins.sns_signing",
    "tests.plugins.webhook",
    "tests.plugins.ses_events",
    "tests.plugins.web_app",
    "tests.plugins.aws_account",
]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"
TEST_SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the project; tests that need it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the project")
    return SHARED


@pytest.fixture
def mailer_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point every setting at a private SQLite file and outbox under tmp_path.

    Returns the environment it set, for subprocesses (``env={**os.environ, **mailer_env}``).
    """
    from mailer.config import get_settings
    from mailer.store.db import reset_engines

    env = {
        "MAILER_DATABASE_URL": f"sqlite:///{tmp_path / 'subscribers.db'}",
        "MAILER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "MAILER_SECRET_KEY": TEST_SECRET,
        "MAILER_BASE_URL": "http://127.0.0.1:8000",
        "MAILER_TRANSPORT": "outbox",
    }
    for key in list(os.environ):
        if key.startswith("MAILER_") and key not in env and key != "MAILER_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no stray .env or subscribers.db from the checkout
    get_settings.cache_clear()
    reset_engines()
    yield env
    get_settings.cache_clear()
    reset_engines()


@pytest.fixture
def settings(mailer_env):
    from mailer.config import get_settings

    return get_settings()


@pytest.fixture
def engine(settings):
    from mailer.store.db import get_engine

    return get_engine(settings.database_url)


@pytest.fixture
def pg_url() -> str:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Needs MAILER_TEST_DATABASE_URL (``.ci/run`` sets it); skips with the reason otherwise.
    """
    base = os.environ.get("MAILER_TEST_DATABASE_URL")
    if not base:
        pytest.skip("MAILER_TEST_DATABASE_URL is not set (PostgreSQL tests)")
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mailer_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    yield url
    from mailer.store.db import reset_engines

    reset_engines()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path
