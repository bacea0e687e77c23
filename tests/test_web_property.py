"""Property: whatever arrives at the public endpoints, the answer is never 5xx and nobody
becomes an active subscriber without a valid confirmation link."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import func
from sqlmodel import select

from mailer.config import load_settings
from mailer.domain import SubscriberStatus
from mailer.store.db import get_engine, session
from mailer.store.models import Subscriber
from mailer.web.app import create_app

pytestmark = pytest.mark.slow

text = st.text(max_size=80)
# JSON can carry what UTF-8 cannot: a lone surrogate ("\\ud800") decodes to an unpaired code point
surrogate_text = st.text(st.characters(categories=("Cs", "Ll", "Nd", "Po")), max_size=20)
addresses = st.one_of(st.emails(), text, st.just("a@example.org\r\nBcc: x@example.org"))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text,
              surrogate_text),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text | surrogate_text,
                                                                      children, max_size=4),
    max_leaves=12,
)
form_fields = st.dictionaries(st.sampled_from(["email", "website", "List-Unsubscribe", "x"]) | text,
                              st.one_of(addresses, text), max_size=5)
tokens = st.one_of(
    text.filter(bool),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=200),
)
content_types = st.sampled_from([
    "application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data",
    "application/json; charset=latin-1", "", "application/x-www-form-urlencoded; charset=utf-16",
])


@pytest.fixture
def client(mailer_env):
    # the limiters are tested elsewhere
    app_settings = load_settings(subscribe_rate_per_ip=1_000_000, confirm_mails_per_hour=1_000_000,
                                 confirm_mails_per_domain=1_000_000,
                                 confirm_mails_per_network=1_000_000)
    app = create_app(app_settings)
    app.state.transport = type("Null", (), {"send": lambda self, m: "id", "name": "null"})()
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client, get_engine(app_settings.database_url)


def assert_no_active_subscriber(engine) -> None:
    with session(engine) as db:
        active = db.exec(select(func.count()).select_from(Subscriber).where(
            Subscriber.status == SubscriberStatus.ACTIVE)).one()
    assert active == 0


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=form_fields, as_json=st.booleans(), raw_json=json_values, content_type=content_types)
def test_subscribe_never_fails_with_5xx(client, fields, as_json, raw_json, content_type):
    test_client, engine = client
    if as_json:
        body = json.dumps(raw_json if raw_json is not None else fields).encode()
    else:
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8", "surrogatepass")
    response = test_client.post("/subscribe", content=body, headers={"content-type": content_type})
    assert response.status_code < 500, response.text
    assert response.status_code in (202, 303, 400, 413, 415, 422)
    assert_no_active_subscriber(engine)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=tokens, endpoint=st.sampled_from(["confirm", "unsubscribe"]),
       method=st.sampled_from(["GET", "POST"]), fields=form_fields)
def test_token_endpoints_never_fail_with_5xx(client, token, endpoint, method, fields):
    test_client, engine = client
    test_client.post("/subscribe", json={"email": "pending@example.org"})
    kwargs = {"data": {k: v for k, v in fields.items() if isinstance(v, str)}} if method == "POST" else {}
    response = test_client.request(method, f"/{endpoint}/{quote(token, safe='')}", **kwargs)
    assert response.status_code < 500, response.text
    assert_no_active_subscriber(engine)


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=200), position=st.integers(min_value=0, max_value=200),
       replacement=st.sampled_from("AZaz09-_."), method=st.sampled_from(["GET", "POST"]))
def test_damaged_real_confirm_tokens_never_confirm(client, cut, position, replacement, method):
    """Truncated or altered links from a real confirmation mail: refused, nobody activated."""
    from mailer.tokens import make_confirm_token

    test_client, engine = client
    test_client.post("/subscribe", json={"email": "victim@example.org"})
    with session(engine) as db:
        row = db.exec(select(Subscriber).where(Subscriber.email == "victim@example.org")).one()
    secret = test_client.app.state.settings.secret_key
    token = make_confirm_token(secret, row.id, row.confirm_nonce)
    # The signature's last base64 character carries padding bits: some changes there decode to
    # the same signature, so that one place is left alone.
    at = position % (len(token) - 1)
    damaged = token[: max(1, len(token) - cut)] if cut % 2 else (
        token[:at] + replacement + token[at + 1:])
    if damaged == token:
        return
    response = test_client.request(method, f"/confirm/{quote(damaged, safe='')}")
    assert 400 <= response.status_code < 500
    assert_no_active_subscriber(engine)


SURROGATES = ['{"email": "\\ud800@example.org"}', '{"email": "a@ex\\udfffample.org"}',
              '{"email": "a@example.org", "website": "\\ud800"}', '{"\\ud800": "a@example.org"}',
              '{"email": "a@example.org", "return": "\\udc80"}']


@pytest.mark.parametrize("body", SURROGATES)
def test_a_lone_surrogate_in_json_is_a_4xx_like_a_bad_address(client, body):
    test_client, engine = client
    response = test_client.post("/subscribe", content=body.encode(),
                                headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=surrogate_text, field=st.sampled_from(["email", "website", "return", "x"]),
       route=st.sampled_from(["/subscribe", "/subscribe/embed", "/unsubscribe/x", "/confirm/x"]))
def test_surrogates_in_json_never_fail_with_5xx(client, value, field, route):
    test_client, engine = client
    body = json.dumps({"email": f"{value}@example.org", field: value})  # ensure_ascii: \\udXXX
    response = test_client.post(route, content=body.encode(),
                                headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert_no_active_subscriber(engine)


# -- every public route, whatever arrives (issue 9: zero 5xx) -----------------------------------

ROUTES = ["/subscribe", "/subscribe/thanks", "/subscribe/embed", "/confirm/{token}",
          "/unsubscribe/{token}", "/webhooks/ses", "/healthz", "/admin", "/admin/stats.json",
          "/admin/issues/{number}", "/{junk}"]
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(min_value=500, max_value=5000).map(lambda depth: b"[" * depth),
    st.integers(min_value=500, max_value=5000).map(lambda depth: b'{"a":' * depth),
    form_fields.map(lambda fields: "&".join(f"{k}={v}" for k, v in fields.items()).encode(
        "utf-8", "surrogatepass")),
)
extra_headers = st.dictionaries(
    st.sampled_from(["authorization", "x-forwarded-for", "accept", "x-amz-sns-message-type",
                     "origin", "cookie", "content-encoding", "transfer-encoding"]),
    header_text, max_size=3)


NASTY = {"token": "x", "number": 1, "headers": {}, "query": {}}


@hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(route="/subscribe", method="POST", body=b"[" * 1500, content_type="application/json", **NASTY)
@example(route="/webhooks/ses", method="POST", body=b"[" * 100_000, content_type="text/plain", **NASTY)
@example(route="/unsubscribe/{token}", method="POST", body=b"x", content_type="multipart/form-data",
         **NASTY)
@given(route=st.sampled_from(ROUTES),
       method=st.sampled_from(["POST", "POST", "POST", "GET", "GET", "PUT", "HEAD", "OPTIONS", "DELETE"]),
       token=tokens, number=st.integers(min_value=-(2**70), max_value=2**70), body=bodies,
       content_type=content_types | header_text, headers=extra_headers,
       query=st.dictionaries(st.sampled_from(["return", "email", "x"]) | text, text, max_size=3))
def test_every_public_route_answers_without_5xx(client, caplog, route, method, token, number, body,
                                                content_type, headers, query):
    test_client, engine = client
    path = route.format(token=quote(token, safe=""), number=number, junk=quote(token, safe=""))
    request_headers = {**headers, "content-type": content_type}
    if "transfer-encoding" in request_headers:
        del request_headers["transfer-encoding"]  # the test client frames the body itself
    response = test_client.request(method, path, content=body if method != "GET" else None,
                                   headers=request_headers, params=query)
    assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
    assert not [record for record in caplog.records if record.exc_info], caplog.text
    assert_no_active_subscriber(engine)
