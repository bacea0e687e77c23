"""Weak or example /admin credentials keep the operator pages shut (issue 19, item 2).

A password or token copied from an example, or one too short or too plain to resist guessing,
switches its way in off: the pages answer 403 with the reason, `mailer serve` says so in one
line when it starts, and `mailer doctor` fails the check with the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.web_clients import USER, admin_client, basic_auth

STRONG_PASSWORD = "a long operator password"
STRONG_TOKEN = "Zq3-operator-token-7fK2mN9pR4sT8vW1xY6"

WEAK_PASSWORDS = {
    "deploy example": "change-me-too",
    ".env.example example": "a-long-password",
    "example, other case and spaces": "  Change-Me-Too ",
    "one character": "x",
    "eleven characters": "Kq8#mZ2!pW5",
    "all one character": "a" * 20,
    "two characters repeated": "abababababababab",
}
WEAK_TOKENS = {
    ".env.example example": "a-long-random-token",
    "the example secret key": "change-me-to-a-long-random-string",
    "31 characters": "Zq3-operator-token-7fK2mN9pR4sT",
    "all one character": "t" * 40,
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client_with(mailer_env, engine, monkeypatch):
    return lambda **env: admin_client(monkeypatch, env)


@pytest.mark.parametrize("password", list(WEAK_PASSWORDS.values()), ids=list(WEAK_PASSWORDS))
def test_a_weak_or_example_password_does_not_open_admin(client_with, password):
    client = client_with(MAILER_ADMIN_USER=USER, MAILER_ADMIN_PASSWORD=password)
    response = client.get("/admin/stats.json", headers=basic_auth(USER, password))
    assert response.status_code == 403
    assert "switched off" in response.text and "MAILER_ADMIN_PASSWORD" in response.text
    assert "campaigns" not in response.text


@pytest.mark.parametrize("token", list(WEAK_TOKENS.values()), ids=list(WEAK_TOKENS))
def test_a_weak_or_example_token_does_not_open_admin(client_with, token):
    client = client_with(MAILER_ADMIN_TOKEN=token)
    response = client.get("/admin/stats.json", headers=_bearer(token))
    assert response.status_code == 403
    assert "switched off" in response.text and "MAILER_ADMIN_TOKEN" in response.text


def test_strong_credentials_still_open_admin(client_with):
    client = client_with(MAILER_ADMIN_USER=USER, MAILER_ADMIN_PASSWORD=STRONG_PASSWORD,
                         MAILER_ADMIN_TOKEN=STRONG_TOKEN)
    assert client.get("/admin/stats.json", headers=basic_auth(USER, STRONG_PASSWORD)).status_code == 200
    assert client.get("/admin/stats.json", headers=_bearer(STRONG_TOKEN)).status_code == 200


def test_a_weak_password_beside_a_strong_token_leaves_only_the_token(client_with):
    client = client_with(MAILER_ADMIN_USER=USER, MAILER_ADMIN_PASSWORD="change-me-too",
                         MAILER_ADMIN_TOKEN=STRONG_TOKEN)
    assert client.get("/admin/stats.json", headers=basic_auth(USER, "change-me-too")).status_code == 401
    assert client.get("/admin/stats.json", headers=_bearer(STRONG_TOKEN)).status_code == 200


def test_doctor_fails_a_weak_admin_credential_and_says_how_to_fix_it(mailer_env, monkeypatch):
    from mailer.config import load_settings
    from mailer.doctor.local import check_admin

    assert check_admin(load_settings()).status == "ok"  # none set: /admin is simply off
    monkeypatch.setenv("MAILER_ADMIN_USER", USER)
    monkeypatch.setenv("MAILER_ADMIN_PASSWORD", "change-me-too")
    check = check_admin(load_settings())
    assert (check.name, check.status) == ("operator console", "FAIL")
    assert "MAILER_ADMIN_PASSWORD is an example value" in check.message
    assert "token_urlsafe" in check.message  # the fix
    monkeypatch.setenv("MAILER_ADMIN_PASSWORD", STRONG_PASSWORD)
    assert check_admin(load_settings()).status == "ok"


@pytest.mark.peer
def test_serve_says_in_one_line_that_admin_is_off(mailer_env, web_server_factory, tmp_path):
    import httpx

    url = web_server_factory({"MAILER_ADMIN_USER": USER, "MAILER_ADMIN_PASSWORD": "x"})
    assert httpx.get(f"{url}/admin", headers=basic_auth(USER, "x")).status_code == 403
    log = "".join(p.read_text() for p in tmp_path.glob("web-*.log"))
    said = [line for line in log.splitlines() if "/admin" in line and "off" in line]
    assert len(said) == 1, log
    assert said[0].startswith("warning: /admin is off: MAILER_ADMIN_PASSWORD is shorter than 12")


# -- every credential shown in the project's own files is refused -----------------------------

SCANNED = [ROOT / ".env.example", ROOT / "README.md", *sorted((ROOT / "deploy").iterdir()),
           *sorted((ROOT / "docs").glob("*.md"))]
# NAME=value, also commented out or inside a shell line; `$(...)` values are generated, not shown
SHOWN = re.compile(r"\b(MAILER_(?:SECRET_KEY|ADMIN_PASSWORD|ADMIN_TOKEN))=['\"]?([^\s'\"`$][^\s'\"`]*)")


def shown_credentials() -> set[tuple[str, str]]:
    found = set()
    for path in SCANNED:
        if path.is_file():
            found.update(SHOWN.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_scan_finds_the_shipped_examples():
    found = shown_credentials()
    assert ("MAILER_ADMIN_PASSWORD", "change-me-too") in found  # deploy/mailer.env
    assert ("MAILER_SECRET_KEY", "change-me-to-a-long-random-string") in found
    assert ("MAILER_ADMIN_TOKEN", "a-long-random-token") in found  # .env.example


@pytest.mark.parametrize("name, value", sorted(shown_credentials()))
def test_every_credential_shown_in_the_docs_is_refused(client_with, name, value):
    from mailer.config import secret_key_problem

    if name == "MAILER_SECRET_KEY":
        assert secret_key_problem(value) is not None
        return
    if name == "MAILER_ADMIN_PASSWORD":
        client = client_with(MAILER_ADMIN_USER=USER, MAILER_ADMIN_PASSWORD=value)
        headers = basic_auth(USER, value)
    else:
        client = client_with(MAILER_ADMIN_TOKEN=value)
        headers = _bearer(value)
    assert client.get("/admin/stats.json", headers=headers).status_code == 403, (name, value)


def test_the_deploy_file_keeps_admin_shut_until_edited(client_with, monkeypatch, tmp_path):
    from dotenv import dotenv_values

    deploy = dotenv_values(Path(ROOT / "deploy" / "mailer.env"))
    client = client_with(MAILER_ADMIN_USER=deploy["MAILER_ADMIN_USER"],
                         MAILER_ADMIN_PASSWORD=deploy["MAILER_ADMIN_PASSWORD"])
    headers = basic_auth(deploy["MAILER_ADMIN_USER"], deploy["MAILER_ADMIN_PASSWORD"])
    assert client.get("/admin", headers=headers).status_code == 403
