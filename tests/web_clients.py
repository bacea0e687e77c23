"""The operator's credentials and the in-process web clients tests log in with.

`admin_client` is the app as `mailer web` builds it from the environment, for the /admin pages;
`basic_auth` is the header a browser sends after the log-in prompt.
"""

from __future__ import annotations

import base64

USER, PASSWORD, TOKEN = "operator", "a long operator password", "operator-token-0123456789abcdefghij"
ADMIN_ENV = {"MAILER_ADMIN_USER": USER, "MAILER_ADMIN_PASSWORD": PASSWORD,
             "MAILER_ADMIN_TOKEN": TOKEN}


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP Basic auth for `user` and `password`."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def admin_client(monkeypatch, env: dict[str, str]):
    """A TestClient of the app built from the settings after `env` is set (monkeypatched, so it
    is undone after the test)."""
    from fastapi.testclient import TestClient

    from mailer.config import get_settings
    from mailer.web.app import create_app

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return TestClient(create_app(get_settings()))
