"""The public endpoints in-process (TestClient) with a recording transport: every rule, fast.

The same flows run against the real server under uvicorn in test_web_peer.py.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlmodel import select

from mailer.domain import SubscriberStatus
from mailer.store.db import session
from mailer.store.models import Subscriber, SubscriberChange
from mailer.tokens import make_confirm_token, make_unsubscribe_token
from mailer.web.app import create_app
from tests.fakes import RecordingTransport
from tests.web_clients import confirm_token_from, subscribe, subscriber

FORM = {"content-type": "application/x-www-form-urlencoded"}


def rows(engine) -> list[Subscriber]:
    with session(engine) as db:
        return list(db.exec(select(Subscriber)))


# -- subscribe ------------------------------------------------------------------------------------


def test_json_subscribe_creates_a_pending_row_and_sends_one_confirmation(client, engine, transport):
    response = subscribe(client, "Reader@Example.ORG")
    assert response.status_code == 202
    assert response.json()["status"] == "ok"
    row = subscriber(engine, "Reader@example.org")
    assert row is not None and row.status == SubscriberStatus.PENDING
    assert row.signup_ip == "testclient"
    [mail] = transport.sent
    assert mail.to == "Reader@example.org"
    assert "http://127.0.0.1:8000/confirm/" in mail.text
    assert "http://127.0.0.1:8000/confirm/" in mail.html


def test_form_subscribe_redirects_to_the_thank_you_page(client, engine):
    response = client.post("/subscribe", data={"email": "form@example.org", "website": ""})
    assert response.status_code == 303
    assert response.headers["location"] == "/subscribe/thanks"
    assert subscriber(engine, "form@example.org").status == SubscriberStatus.PENDING
    thanks = client.get("/subscribe/thanks")
    assert thanks.status_code == 200 and "Check your inbox" in thanks.text


def test_the_answer_is_the_same_whatever_the_address_state(client, engine, transport):
    def answer(email):
        response = subscribe(client, email)
        return response.status_code, response.content

    new = answer("new@example.org")
    pending = answer("new@example.org")  # pending, mailed a moment ago
    subscribe(client, "active@example.org")
    client.post(f"/confirm/{confirm_token_from(transport)}")
    active = answer("active@example.org")
    subscribe(client, "gone@example.org")
    gone = subscriber(engine, "gone@example.org")
    client.post(f"/unsubscribe/{make_unsubscribe_token('test-secret-key-0123456789abcdef', gone.id)}")
    unsubscribed = answer("gone@example.org")
    assert new == pending == active == unsubscribed
    form_answers = {
        (r.status_code, r.headers["location"], r.content)
        for r in (client.post("/subscribe", data={"email": e}) for e in
                  ("new@example.org", "active@example.org", "gone@example.org", "other@example.org"))
    }
    assert len(form_answers) == 1


def test_at_most_one_confirmation_mail_per_address_per_interval(client, transport):
    for _ in range(3):
        assert subscribe(client, "eager@example.org").status_code == 202
    assert len(transport.sent) == 1


def test_filled_honeypot_answers_ok_and_stores_nothing(client, engine, transport):
    response = client.post("/subscribe", data={"email": "bot@example.org", "website": "http://spam"})
    assert response.status_code == 303
    json_response = subscribe(client, "bot2@example.org", website="x")
    assert json_response.status_code == 202
    assert subscriber(engine, "bot@example.org") is None
    assert subscriber(engine, "bot2@example.org") is None
    assert transport.sent == []


def test_a_failing_transport_never_reaches_the_reader(settings, engine, caplog):
    app = create_app(settings)
    app.state.transport = RecordingTransport(fail=True)
    with TestClient(app) as test_client:
        response = test_client.post("/subscribe", json={"email": "unlucky@example.org"})
    assert response.status_code == 202
    assert "smtp.internal" not in response.text
    assert "confirmation mail for subscriber" in caplog.text


@pytest.mark.parametrize(
    "email",
    ["not-an-address", "a@b", "x" * 400 + "@example.org", "a@example.org\r\nBcc: victim@example.org",
     "a@example.org\nX: y", "", "   ", "two@example.org,three@example.org"],
)
def test_malformed_addresses_get_422_and_change_nothing(client, engine, transport, email):
    response = subscribe(client, email)
    assert response.status_code == 422
    assert response.json()["status"] == "error"
    form = client.post("/subscribe", data={"email": email})
    assert form.status_code == 422
    assert 'aria-invalid="true"' in form.text  # the form again, with the error beside the field
    assert rows(engine) == [] and transport.sent == []


def test_non_string_json_fields_and_non_object_bodies_get_4xx(client, engine):
    for body in ({"email": ["a@example.org"]}, {"email": 5}, {"email": None}, ["a@example.org"], "x"):
        assert client.post("/subscribe", json=body).status_code == 422
    assert client.post("/subscribe", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    repeated = client.post("/subscribe", content=b"email=a%40example.org&email=b%40example.org", headers=FORM)
    assert repeated.status_code == 422
    assert rows(engine) == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "multipart/form-data; boundary=x", "application/xml", ""]
)
def test_wrong_content_types_get_415(client, engine, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/subscribe", content=b"email=a%40example.org", headers=headers)
    assert response.status_code == 415
    assert rows(engine) == []


def test_huge_bodies_get_413_declared_or_streamed(client, engine, settings):
    big = b"email=a%40example.org&filler=" + b"x" * (settings.max_body_bytes + 1)
    assert client.post("/subscribe", content=big, headers=FORM).status_code == 413

    def chunks():  # no Content-Length: the cap must hold while the body streams in
        yield b"email=b%40example.org&filler="
        for _ in range(64):
            yield b"y" * 1024

    assert client.post("/subscribe", content=chunks(), headers=FORM).status_code == 413
    assert rows(engine) == []


def test_bursts_from_one_ip_get_429_with_retry_after(mailer_env, monkeypatch, engine):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_SUBSCRIBE_RATE_PER_IP", "3")
    get_settings.cache_clear()
    app = create_app(get_settings())
    app.state.transport = RecordingTransport()
    with TestClient(app) as test_client:
        codes = [test_client.post("/subscribe", json={"email": f"b{i}@example.org"}).status_code
                 for i in range(5)]
        limited = test_client.post("/subscribe", json={"email": "late@example.org"})
    assert codes == [202, 202, 202, 429, 429]
    assert int(limited.headers["retry-after"]) >= 1
    assert subscriber(engine, "late@example.org") is None


# -- confirm -------------------------------------------------------------------------------------


def test_get_confirm_shows_a_button_and_changes_nothing(client, engine, transport):
    subscribe(client, "look@example.org")
    token = confirm_token_from(transport)
    for _ in range(3):  # a mail scanner, then the reader
        page = client.get(f"/confirm/{token}")
        assert page.status_code == 200
        assert f'action="/confirm/{token}"' in page.text and 'method="post"' in page.text
    assert subscriber(engine, "look@example.org").status == SubscriberStatus.PENDING


def test_post_confirm_activates_once_and_records_the_consent(client, engine, transport):
    subscribe(client, "yes@example.org")
    token = confirm_token_from(transport)
    response = client.post(f"/confirm/{token}")
    assert response.status_code == 200 and "You are subscribed" in response.text
    row = subscriber(engine, "yes@example.org")
    assert row.status == SubscriberStatus.ACTIVE
    assert row.confirmed_at is not None and row.confirm_ip == "testclient"
    # a second click confirms nothing new (test_web_public_pages: it shows the same page)
    again = client.post(f"/confirm/{token}")
    assert again.status_code == 200 and "You are subscribed" in again.text
    with session(engine) as db:
        confirmations = db.exec(select(SubscriberChange).where(
            SubscriberChange.subscriber_id == row.id,
            SubscriberChange.source == "web-confirm")).all()
    assert len(confirmations) == 1


def expired_token(secret: str, subscriber_id: int, nonce: str) -> str:
    class EightDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 24 * 3600

    return URLSafeTimedSerializer(secret, salt="mailer.confirm.v1", signer=EightDaysAgo).dumps(
        [subscriber_id, nonce]
    )


def test_forged_truncated_expired_and_foreign_tokens_are_refused(client, engine, transport, settings):
    subscribe(client, "target@example.org")
    token = confirm_token_from(transport)
    row = subscriber(engine, "target@example.org")
    forged = make_confirm_token("someone-elses-secret-key-123456", row.id, row.confirm_nonce)
    unsubscribe_token = make_unsubscribe_token(settings.secret_key, row.id)
    cases = {
        "forged": (forged, 400),
        "truncated": (token[:-4], 400),
        # a character inside the signature: the last one may only carry base64 padding bits
        "tampered": (token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:], 400),
        "unsubscribe token used to confirm": (unsubscribe_token, 400),
        "garbage": ("%00%0d%0a<script>", 400),
        "too long": ("a" * 5000, 400),
        "expired": (expired_token(settings.secret_key, row.id, row.confirm_nonce), 410),
    }
    for name, (bad, status) in cases.items():
        for method in (client.get, client.post):
            response = method(f"/confirm/{bad}")
            assert response.status_code == status, (name, method)
            assert "<script>" not in response.text
    assert subscriber(engine, "target@example.org").status == SubscriberStatus.PENDING


# -- unsubscribe ---------------------------------------------------------------------------------


def active_subscriber(client, engine, transport, email: str) -> Subscriber:
    subscribe(client, email)
    client.post(f"/confirm/{confirm_token_from(transport)}")
    return subscriber(engine, email)


def test_one_click_unsubscribe_is_200_idempotent_and_recorded_as_one_click(client, engine, transport, settings):
    row = active_subscriber(client, engine, transport, "leaving@example.org")
    token = make_unsubscribe_token(settings.secret_key, row.id)
    for _ in range(2):
        response = client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=FORM)
        assert response.status_code == 200
    assert subscriber(engine, "leaving@example.org").status == SubscriberStatus.UNSUBSCRIBED
    with session(engine) as db:
        changes = db.exec(select(SubscriberChange).where(SubscriberChange.subscriber_id == row.id)).all()
    last = [c for c in changes if c.to_status == SubscriberStatus.UNSUBSCRIBED]
    assert len(last) == 1 and last[0].source == "one-click"


def test_multipart_one_click_counts_too(client, engine, transport, settings):
    row = active_subscriber(client, engine, transport, "multi@example.org")
    token = make_unsubscribe_token(settings.secret_key, row.id)
    response = client.post(f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    with session(engine) as db:
        change = db.exec(select(SubscriberChange).where(
            SubscriberChange.subscriber_id == row.id,
            SubscriberChange.to_status == SubscriberStatus.UNSUBSCRIBED)).one()
    assert change.source == "one-click"


def test_manage_page_shows_the_state_and_get_never_unsubscribes(client, engine, transport, settings):
    row = active_subscriber(client, engine, transport, "manage@example.org")
    token = make_unsubscribe_token(settings.secret_key, row.id)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert "manage@example.org" in page.text and "receives" in page.text
    assert f'action="/unsubscribe/{token}"' in page.text
    assert subscriber(engine, "manage@example.org").status == SubscriberStatus.ACTIVE
    button = client.post(f"/unsubscribe/{token}", data={})
    assert button.status_code == 200 and "You are unsubscribed" in button.text
    after = client.get(f"/unsubscribe/{token}")
    assert "is unsubscribed" in after.text and 'action="/unsubscribe/' not in after.text


def test_forged_unsubscribe_tokens_are_refused_and_change_nothing(client, engine, transport, settings):
    row = active_subscriber(client, engine, transport, "stay@example.org")
    good = make_unsubscribe_token(settings.secret_key, row.id)
    for bad in (make_unsubscribe_token("another-secret-key-abcdef123456", row.id), good[:-3], "x",
                make_confirm_token(settings.secret_key, row.id, "nonce")):
        assert client.get(f"/unsubscribe/{bad}").status_code == 400
        assert client.post(f"/unsubscribe/{bad}", content=b"List-Unsubscribe=One-Click", headers=FORM).status_code == 400
    assert subscriber(engine, "stay@example.org").status == SubscriberStatus.ACTIVE


def test_unsubscribe_of_an_erased_address_still_answers_200(client, engine, settings):
    token = make_unsubscribe_token(settings.secret_key, 987654)
    response = client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=FORM)
    assert response.status_code == 200
    assert client.get(f"/unsubscribe/{token}").status_code == 404


# -- pages and headers -----------------------------------------------------------------------------


def test_pages_carry_the_security_headers_and_the_csp_allows_their_style(client):
    from mailer.web.pages import PAGE_CSS_HASH

    for response in (client.get("/subscribe"), client.get("/nope"), client.get("/confirm/bad"),
                     client.post("/subscribe", content=b"x", headers={"content-type": "text/plain"})):
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "form-action 'self'" in csp
        assert f"'{PAGE_CSS_HASH}'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-type"].startswith("text/html")
        assert "<script" not in response.text and '<html lang="en">' in response.text


def test_form_page_is_labelled_and_has_a_hidden_honeypot(client):
    page = client.get("/subscribe").text
    assert '<label for="email">' in page and 'id="email"' in page
    assert 'name="website"' in page and 'tabindex="-1"' in page


def test_unknown_pages_and_wrong_methods_are_friendly_4xx(client):
    assert client.get("/does-not-exist").status_code == 404
    assert client.put("/subscribe").status_code == 405
    assert client.delete("/unsubscribe/abc").status_code == 405
    assert client.get("/healthz").json() == {"status": "ok"}
