"""Issue 9 findings 3, 7 and 8: a database that cannot be written answers 503 with Retry-After;
hostile bodies get 4xx without a traceback; any POST to a valid unsubscribe link unsubscribes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from mailer.config import get_settings, load_settings
from mailer.domain import SubscriberStatus, utcnow
from mailer.store.db import reset_engines, session
from mailer.store.models import Subscriber
from mailer.tokens import make_confirm_token, make_unsubscribe_token
from mailer.web.app import create_app
from tests.conftest import TEST_SECRET

NULL_TRANSPORT = type("Null", (), {"send": lambda self, message: "id", "name": "null"})()


def _add(engine, email: str, status: SubscriberStatus, nonce: str | None = None) -> int:
    with session(engine) as db:
        row = Subscriber(email=email, status=status, confirm_nonce=nonce, confirm_sent_at=utcnow(),
                         confirmed_at=utcnow() if status is SubscriberStatus.ACTIVE else None)
        db.add(row)
        db.commit()
        return row.id


def _status(engine, subscriber_id: int) -> str:
    with session(engine) as db:
        return db.get(Subscriber, subscriber_id).status


def _client(app_settings) -> TestClient:
    app = create_app(app_settings)
    app.state.transport = NULL_TRANSPORT
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def _no_traceback(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback reached the log"
    assert "Traceback" not in caplog.text


# -- finding 3: the database cannot be written -------------------------------------------------


@pytest.fixture
def read_only(settings, engine):
    """The test's real SQLite file with a pending and an active reader, then opened read-only."""
    pending = _add(engine, "pending@example.org", SubscriberStatus.PENDING, nonce="n" * 24)
    active = _add(engine, "active@example.org", SubscriberStatus.ACTIVE)
    path = settings.database_url.removeprefix("sqlite:///")
    reset_engines()
    ro_settings = load_settings(database_url=f"sqlite:///file:{path}?mode=ro&uri=true")
    return _client(ro_settings), pending, active


def _assert_try_later(response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1


def test_subscribe_on_a_read_only_database_is_503_with_retry_after(read_only, caplog):
    client, _, _ = read_only
    _assert_try_later(client.post("/subscribe", json={"email": "new@example.org"}))
    _assert_try_later(client.post("/subscribe", data={"email": "new2@example.org"}))
    _no_traceback(caplog)


def test_confirm_on_a_read_only_database_is_503_with_retry_after(read_only, caplog):
    client, pending, _ = read_only
    token = make_confirm_token(TEST_SECRET, pending, "n" * 24)
    assert client.get(f"/confirm/{token}").status_code == 200  # reading still works
    _assert_try_later(client.post(f"/confirm/{token}"))
    _no_traceback(caplog)


def test_an_unsubscribe_that_cannot_be_written_is_never_answered_with_success(read_only, caplog):
    client, _, active = read_only
    token = make_unsubscribe_token(TEST_SECRET, active)
    for kwargs in ({"content": b"List-Unsubscribe=One-Click",
                    "headers": {"content-type": "application/x-www-form-urlencoded"}},
                   {"data": {}}):
        response = client.post(f"/unsubscribe/{token}", **kwargs)
        _assert_try_later(response)
        assert "You are unsubscribed" not in response.text
    _no_traceback(caplog)


def _fill_to_the_last_page(engine) -> None:
    """From now on the SQLite file may not grow (SQLite's own "database or disk is full"), and
    the tables the public routes write are filled up to their last page."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    def cap(dbapi_connection, _record) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(engine, "connect", cap)
    engine.dispose()
    fillers = {
        "signup_request": "INSERT INTO signup_request (at, state, mailbox_key, domain) "
                          "VALUES ('2000-01-01 00:00:00', 'done', :pad, 'x')",
        "subscriber_change": "INSERT INTO subscriber_change (subscriber_id, at, to_status, source) "
                             "VALUES (:id, '2000-01-01 00:00:00', 'active', :pad)",
    }
    with engine.connect() as connection:
        subscriber_id = connection.exec_driver_sql("SELECT min(id) FROM subscriber").scalar()
        tables = set(connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table'").scalars())
        for sql in (sql for table, sql in fillers.items() if table in tables):
            for size in (60, 8, 1):  # big rows first, then the last crumbs of free space
                try:
                    while True:
                        connection.exec_driver_sql(sql.replace(":pad", f"'{'p' * size}'")
                                                   .replace(":id", str(subscriber_id)))
                        connection.commit()
                except OperationalError as error:
                    assert "full" in str(error)
                    connection.rollback()


def test_a_full_disk_answers_503_and_never_success(settings, engine, caplog):
    reader = _add(engine, "full@example.org", SubscriberStatus.ACTIVE)
    _fill_to_the_last_page(engine)
    client = _client(settings)
    _assert_try_later(client.post("/subscribe", json={"email": "new@example.org"}))
    response = client.post(f"/unsubscribe/{make_unsubscribe_token(TEST_SECRET, reader)}",
                           content=b"List-Unsubscribe=One-Click",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    _assert_try_later(response)
    assert "You are unsubscribed" not in response.text
    assert _status(engine, reader) == SubscriberStatus.ACTIVE
    assert "database or disk is full" in caplog.text
    _no_traceback(caplog)


# -- finding 7: hostile bodies -----------------------------------------------------------------


@pytest.fixture
def client(settings, engine):
    return _client(settings)


def test_deeply_nested_json_to_subscribe_is_4xx_without_traceback(client, caplog):
    response = client.post("/subscribe", content=b"[" * 1500,
                           headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    _no_traceback(caplog)


def test_deeply_nested_json_to_the_web_hook_is_4xx_without_traceback(mailer_env, monkeypatch, caplog):
    monkeypatch.setenv("MAILER_SNS_TOPIC_ARNS", "arn:aws:sns:us-east-1:123456789012:ses-events")
    get_settings.cache_clear()
    client = _client(get_settings())
    response = client.post("/webhooks/ses", content=b"[" * 100_000,
                           headers={"content-type": "text/plain; charset=UTF-8"})
    assert 400 <= response.status_code < 500
    _no_traceback(caplog)


@pytest.mark.parametrize("control", ["\t", "\r", "\n"])
def test_a_signing_cert_url_with_a_control_character_is_4xx(mailer_env, monkeypatch, caplog, control):
    topic = "arn:aws:sns:us-east-1:123456789012:ses-events"
    monkeypatch.setenv("MAILER_SNS_TOPIC_ARNS", topic)
    get_settings.cache_clear()
    client = _client(get_settings())  # the production certificate fetcher
    envelope = {
        "Type": "Notification", "MessageId": "m-1", "TopicArn": topic, "Message": "{}",
        "Timestamp": "2026-11-29T08:00:00.000Z", "SignatureVersion": "2", "Signature": "AAAA",
        "SigningCertURL": f"https://sns.us-east-1.amazonaws.com/Simple{control}NotificationService.pem",
    }
    response = client.post("/webhooks/ses", content=json.dumps(envelope))
    assert 400 <= response.status_code < 500, response.text
    _no_traceback(caplog)


# -- finding 8: one-click unsubscribe whatever the body ----------------------------------------

ODD_BODIES = {
    "multipart without boundary": (b"--x\r\n\r\nList-Unsubscribe=One-Click", "multipart/form-data"),
    "multipart with a bad boundary": (b"List-Unsubscribe=One-Click", "multipart/form-data; boundary=zz"),
    "multipart with an empty boundary": (b"--\r\n", 'multipart/form-data; boundary=""'),
    "over the size cap": (b"List-Unsubscribe=One-Click&pad=" + b"x" * 64 * 1024,
                          "application/x-www-form-urlencoded"),
    "JSON": (b'{"List-Unsubscribe": "One-Click"}', "application/json"),
    "plain text": (b"List-Unsubscribe=One-Click", "text/plain"),
    "no content type": (b"List-Unsubscribe=One-Click", ""),
    "bad urlencoding": (b"List-Unsubscribe=%zz%", "application/x-www-form-urlencoded; charset=bogus"),
}


@pytest.mark.parametrize("name", ODD_BODIES)
def test_any_post_to_a_valid_unsubscribe_link_unsubscribes(client, engine, name, caplog):
    body, content_type = ODD_BODIES[name]
    reader = _add(engine, f"reader-{abs(hash(name))}@example.org", SubscriberStatus.ACTIVE)
    token = make_unsubscribe_token(TEST_SECRET, reader)
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(f"/unsubscribe/{token}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert "You are unsubscribed" in response.text
    assert _status(engine, reader) == SubscriberStatus.UNSUBSCRIBED
    _no_traceback(caplog)


def test_a_chunked_body_over_the_cap_still_unsubscribes(client, engine):
    reader = _add(engine, "chunky@example.org", SubscriberStatus.ACTIVE)
    token = make_unsubscribe_token(TEST_SECRET, reader)

    def chunks():
        yield b"List-Unsubscribe=One-Click&pad="
        for _ in range(64):
            yield b"x" * 1024

    response = client.post(f"/unsubscribe/{token}", content=chunks(),
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert _status(engine, reader) == SubscriberStatus.UNSUBSCRIBED
