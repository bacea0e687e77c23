"""The operator's credentials and the in-process web clients tests log in with.

`admin_client` is the app as `mailer web` builds it from the environment, for the /admin pages;
`basic_auth` is the header a browser sends after the log-in prompt. The public pages' helpers:
subscribe, find a subscriber, and the confirm link from the recorded mail or the outbox.
"""

from __future__ import annotations

import base64
import email
import email.policy
import mailbox
import re
import time
from pathlib import Path

from sqlmodel import select

from mailer.store.db import session
from mailer.store.models import Subscriber
from tests.fakes import RecordingTransport

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


def subscriber(engine, email: str) -> Subscriber | None:
    with session(engine) as db:
        return db.exec(select(Subscriber).where(Subscriber.email == email)).first()


def site_client(base_url: str, user_agent: str):
    """A TestClient of the app built from the settings already in the environment, as a reader's
    browser at `base_url` meets it: redirects are answered, not followed (the tests read them)."""
    from fastapi.testclient import TestClient

    from mailer.config import get_settings
    from mailer.web.app import create_app

    get_settings.cache_clear()
    return TestClient(create_app(get_settings()), base_url=base_url, follow_redirects=False,
                      headers={"user-agent": user_agent})


def confirm_token_from(transport: RecordingTransport) -> str:
    text = transport.sent[-1].text
    line = next(line for line in text.splitlines() if "/confirm/" in line)
    return line.rsplit("/confirm/", 1)[1].strip()


def subscribe(client, email: str, **extra):
    return client.post("/subscribe", json={"email": email, **extra})


def confirm_link_from_outbox(mailer_env, base_url: str) -> str:
    deadline = time.monotonic() + 15
    folder = Path(mailer_env["MAILER_OUTBOX_DIR"])
    while time.monotonic() < deadline:
        if (folder / "new").is_dir():
            box = mailbox.Maildir(folder, factory=None, create=False)
            for key in box.keys():
                message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                text = message.get_body(preferencelist=("plain",)).get_content()
                found = re.search(re.escape(base_url) + r"/confirm/\S+", text)
                if found:
                    return found.group(0)
        time.sleep(0.05)
    raise AssertionError("no confirmation mail arrived in the outbox")
