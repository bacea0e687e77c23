"""The real app under uvicorn (`mailer serve` on a free port), spoken to over HTTP with httpx.

The confirmation mail is read back from the outbox Maildir and its link followed; the database is
checked in the SQLite file itself.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.peer, pytest.mark.slow]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MAIL_WAIT = 15.0  # the mail goes out after the answer, in the background


def db_path(mailer_env) -> Path:
    return Path(mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///"))


def db_rows(mailer_env, query: str, *args) -> list[tuple]:
    with sqlite3.connect(db_path(mailer_env)) as connection:
        return connection.execute(query, args).fetchall()


def subscriber_row(mailer_env, address: str) -> tuple | None:
    found = db_rows(mailer_env, "SELECT status, confirmed_at, confirm_ip, signup_ip FROM subscriber WHERE email = ?", address)
    return found[0] if found else None


def outbox_messages(mailer_env) -> list[email.message.EmailMessage]:
    folder = Path(mailer_env["MAILER_OUTBOX_DIR"])
    if not (folder / "new").is_dir():
        return []
    box = mailbox.Maildir(folder, factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]


def wait_for_mail(mailer_env, count: int = 1) -> list[email.message.EmailMessage]:
    deadline = time.monotonic() + MAIL_WAIT
    while time.monotonic() < deadline:
        messages = outbox_messages(mailer_env)
        if len(messages) >= count:
            return messages
        time.sleep(0.05)
    raise AssertionError(f"expected {count} message(s) in the outbox, found {len(outbox_messages(mailer_env))}")


def confirm_link(message: email.message.EmailMessage, base_url: str) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(re.escape(base_url) + r"/confirm/[A-Za-z0-9_.\-]+", text)
    assert match, text
    html = message.get_body(preferencelist=("html",)).get_content()
    assert match.group(0) in html  # the button and the text part lead to the same place
    return match.group(0)


def test_subscribe_confirm_and_one_click_unsubscribe_over_http(web_server, mailer_env):
    with httpx.Client(base_url=web_server, follow_redirects=False) as client:
        answer = client.post("/subscribe", data={"email": "ferris@example.org", "website": ""})
        assert answer.status_code == 303 and answer.headers["location"] == "/subscribe/thanks"
        assert client.get("/subscribe/thanks").status_code == 200

        [message] = wait_for_mail(mailer_env)
        assert message["To"] == "ferris@example.org"
        assert "This Week in Rust" in message["Subject"]
        link = confirm_link(message, web_server)
        assert subscriber_row(mailer_env, "ferris@example.org")[0] == "pending"

        page = client.get(link)  # what a mail scanner does: nothing changes
        assert page.status_code == 200 and "Confirm" in page.text
        assert subscriber_row(mailer_env, "ferris@example.org")[0] == "pending"

        confirmed = client.post(link)
        assert confirmed.status_code == 200
        status, confirmed_at, confirm_ip, signup_ip = subscriber_row(mailer_env, "ferris@example.org")
        assert status == "active" and confirmed_at is not None
        assert confirm_ip == signup_ip == "127.0.0.1"
        again = client.post(link)  # a second click: the same page, nothing confirmed anew
        assert again.status_code == 200 and "You are subscribed" in again.text
        assert subscriber_row(mailer_env, "ferris@example.org")[1] == confirmed_at

        # the confirmed page links to the reader's own page, whose button is the unsubscribe link
        page = client.get(re.search(r'href="(/manage/[^"]+)"', confirmed.text).group(1))
        manage = re.search(r'action="(/unsubscribe/[^"]+)"', page.text).group(1)

    # exactly what a mail client sends for RFC 8058: a fresh connection, no cookies, no token
    one_click = httpx.post(f"{web_server}{manage}", content=b"List-Unsubscribe=One-Click", headers=FORM)
    assert one_click.status_code == 200
    assert not one_click.is_redirect
    assert subscriber_row(mailer_env, "ferris@example.org")[0] == "unsubscribed"
    assert db_rows(mailer_env, "SELECT source FROM subscriber_change WHERE to_status = 'unsubscribed'") == [("one-click",)]
    assert httpx.post(f"{web_server}{manage}", content=b"List-Unsubscribe=One-Click", headers=FORM).status_code == 200

    # the server's access log shows the requests, never a working link
    [log] = Path(mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///")).parent.glob("web-*.log")
    log_text = log.read_text()
    assert "POST /confirm/…" in log_text and "POST /unsubscribe/…" in log_text
    assert link.rsplit("/", 1)[1] not in log_text and manage.rsplit("/", 1)[1] not in log_text


def test_json_subscribe_answers_202_and_mails_once_per_hour(web_server, mailer_env):
    for _ in range(3):
        answer = httpx.post(f"{web_server}/subscribe", json={"email": "json@example.org"})
        assert answer.status_code == 202 and answer.json()["status"] == "ok"
    wait_for_mail(mailer_env)
    # A wrong second mail would come from a background task, after its answer. A later reader's
    # mail marks the server as past the three posts; until it arrives (or the deadline passes)
    # the count is watched, never sampled once after a guessed pause.
    assert httpx.post(f"{web_server}/subscribe", json={"email": "later@example.net"}).status_code == 202
    deadline = time.monotonic() + MAIL_WAIT
    while time.monotonic() < deadline:
        to = [str(m["To"]) for m in outbox_messages(mailer_env)]
        assert to.count("json@example.org") == 1, to
        if "later@example.net" in to:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the later reader's mail never came: the server stopped mailing")


def test_bad_input_gets_4xx_changes_nothing_and_never_500(web_server, mailer_env):
    big = b"email=a%40example.org&x=" + b"x" * 40_000

    def streamed():
        yield b"email=c%40example.org&x="
        for _ in range(40):
            yield b"z" * 1024

    requests = [
        ("POST", "/subscribe", {"data": {"email": "not an address"}}, 422),
        ("POST", "/subscribe", {"data": {"email": "x" * 300 + "@example.org"}}, 422),
        ("POST", "/subscribe", {"data": {"email": "a@example.org\r\nBcc: all@example.org"}}, 422),
        ("POST", "/subscribe", {"json": {"email": "a@example.org\nX-Evil: 1"}}, 422),
        ("POST", "/subscribe", {"content": b"email=a%40example.org", "headers": {"Content-Type": "text/plain"}}, 415),
        ("POST", "/subscribe", {"content": b"<email>a@example.org</email>", "headers": {"Content-Type": "application/xml"}}, 415),
        ("POST", "/subscribe", {"content": b"{broken", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/subscribe", {"content": big, "headers": FORM}, 413),
        ("POST", "/subscribe", {"content": streamed(), "headers": FORM}, 413),
        ("GET", "/confirm/forged.token.value", {}, 400),
        ("POST", "/confirm/" + "A" * 600, {}, 400),
        ("POST", "/unsubscribe/forged", {"content": b"List-Unsubscribe=One-Click", "headers": FORM}, 400),
        ("GET", "/confirm/%0d%0aSet-Cookie:%20x=1", {}, 400),
        ("GET", "/nothing-here", {}, 404),
    ]
    with httpx.Client(base_url=web_server) as client:
        for method, path, kwargs, expected in requests:
            response = client.request(method, path, **kwargs)
            assert response.status_code == expected, (method, path, response.status_code, response.text[:200])
            assert "set-cookie" not in response.headers
    assert db_rows(mailer_env, "SELECT count(*) FROM subscriber") == [(0,)]
    assert outbox_messages(mailer_env) == []


def test_bursts_from_one_ip_are_limited_and_forwarded_for_is_ignored_by_default(web_server_factory, mailer_env):
    url = web_server_factory({"MAILER_SUBSCRIBE_RATE_PER_IP": "3"})
    codes = [
        httpx.post(f"{url}/subscribe", json={"email": f"burst{i}@example.org"},
                   headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
        for i in range(6)
    ]
    assert codes == [202, 202, 202, 429, 429, 429]
    assert db_rows(mailer_env, "SELECT count(*) FROM subscriber") == [(3,)]


def test_forwarded_for_counts_only_behind_a_trusted_proxy(web_server_factory, mailer_env):
    url = web_server_factory({"MAILER_SUBSCRIBE_RATE_PER_IP": "2", "MAILER_TRUSTED_PROXIES": "127.0.0.1"})

    def post(i: int, client_ip: str) -> int:
        return httpx.post(f"{url}/subscribe", json={"email": f"p{i}@example.org"},
                          headers={"X-Forwarded-For": client_ip}).status_code

    assert [post(i, f"203.0.113.{i}") for i in range(4)] == [202] * 4  # four clients
    assert [post(10 + i, "203.0.113.50") for i in range(3)] == [202, 202, 429]  # one client
    signup_ips = {ip for (ip,) in db_rows(mailer_env, "SELECT signup_ip FROM subscriber")}
    assert "203.0.113.0" in signup_ips and "127.0.0.1" not in signup_ips


@pytest.mark.postgres
def test_the_same_flow_on_postgresql(web_server_factory, mailer_env, pg_url):
    url = web_server_factory({"MAILER_DATABASE_URL": pg_url})
    assert httpx.post(f"{url}/subscribe", json={"email": "pg@example.org"}).status_code == 202
    link = confirm_link(wait_for_mail(mailer_env)[0], url)
    assert httpx.post(link).status_code == 200
    assert "You are subscribed" in httpx.post(link).text  # a second click, nothing anew

    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    try:
        with engine.connect() as connection:
            status = connection.execute(text("SELECT status FROM subscriber WHERE email = 'pg@example.org'")).scalar_one()
    finally:
        engine.dispose()
    assert status == "active"
