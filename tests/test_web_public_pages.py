"""The public pages a reader meets first (issue 20, item 23): the site's root, a second click on
a confirm link, and what /subscribe/embed tells the public."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from mailer.config import get_settings
from mailer.domain import SubscriberStatus
from mailer.store import subscribers as subs
from mailer.store.db import session
from mailer.store.models import SubscriberChange
from mailer.tokens import make_manage_token, make_unsubscribe_token
from mailer.web.app import create_app
from tests.fakes import RecordingTransport
from tests.web_clients import confirm_token_from, subscribe, subscriber

RETURN_SITES = ["https://this-week-in-rust.org/newsletter/", "https://staging.internal:8443/x/"]


def changes(engine, subscriber_id: int) -> list[SubscriberChange]:
    with session(engine) as db:
        return list(db.exec(select(SubscriberChange).where(
            SubscriberChange.subscriber_id == subscriber_id)))


def confirmed_reader(client, engine, transport, email: str) -> str:
    """Subscribe and confirm ``email`` through the web; the confirm link it was sent."""
    subscribe(client, email)
    token = confirm_token_from(transport)
    assert client.post(f"/confirm/{token}").status_code == 200
    return token


# -- the root --------------------------------------------------------------------------------------


def test_the_root_takes_a_reader_to_the_subscribe_form(client, settings):
    answer = client.get("/")
    assert answer.status_code in (302, 303, 307) and answer.headers["location"] == "/subscribe"
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200 and f"Subscribe to {settings.newsletter_name}" in page.text
    assert client.head("/").status_code in (302, 303, 307)
    assert "content-security-policy" in answer.headers


# -- a second click on a confirm link ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_second_click_on_the_confirm_link_says_you_are_subscribed(client, engine, transport,
                                                                     settings, method):
    token = confirmed_reader(client, engine, transport, "twice@example.org")
    row = subscriber(engine, "twice@example.org")
    before = changes(engine, row.id)

    again = getattr(client, method)(f"/confirm/{token}")

    assert again.status_code == 200 and "You are subscribed" in again.text
    assert "twice@example.org" in again.text
    manage = f"/manage/{make_manage_token(settings.secret_key, row.id)}"  # the reader's own page
    assert f'href="{manage}"' in again.text
    assert len(changes(engine, row.id)) == len(before)  # nothing recorded twice
    assert subscriber(engine, "twice@example.org").status == SubscriberStatus.ACTIVE


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_old_confirm_link_never_brings_back_an_unsubscribed_reader(client, engine, transport,
                                                                      settings, method):
    token = confirmed_reader(client, engine, transport, "gone@example.org")
    row = subscriber(engine, "gone@example.org")
    client.post(f"/unsubscribe/{make_unsubscribe_token(settings.secret_key, row.id)}")

    again = getattr(client, method)(f"/confirm/{token}")

    assert again.status_code == 410 and "You are subscribed" not in again.text
    assert "<p>This confirmation link has already been used.</p>" in again.text  # a sentence
    assert subscriber(engine, "gone@example.org").status == SubscriberStatus.UNSUBSCRIBED


def test_an_old_confirm_link_is_not_the_reason_a_reader_is_active_again(client, engine, transport):
    """Unsubscribed, then made active again another way: the old link did not do that."""
    token = confirmed_reader(client, engine, transport, "back@example.org")
    with session(engine) as db:
        row = subs.get_by_email(db, "back@example.org")
        subs.change_status(db, row, SubscriberStatus.UNSUBSCRIBED, source="web")
        subs.change_status(db, row, SubscriberStatus.ACTIVE, source="cli")
    for method in (client.get, client.post):
        again = method(f"/confirm/{token}")
        assert again.status_code == 410 and "You are subscribed" not in again.text


# -- the embed page ---------------------------------------------------------------------------------


@pytest.fixture
def embed_client(mailer_env, engine, monkeypatch):
    monkeypatch.setenv("MAILER_ALLOWED_RETURN_URLS", ",".join(RETURN_SITES))
    get_settings.cache_clear()
    app = create_app(get_settings())
    app.state.transport = RecordingTransport()
    return TestClient(app, follow_redirects=False)


@pytest.mark.parametrize("query", [{}, {"return": "https://evil.example/"},
                                   {"return": RETURN_SITES[0] + "thanks"}])
def test_the_embed_page_shows_no_configuration_to_the_public(embed_client, query):
    page = embed_client.get("/subscribe/embed", params=query)
    assert page.status_code == 200
    text = page.text
    assert "MAILER_" not in text  # setting names are for the operator's docs
    assert "staging.internal" not in text  # the allow-list is not published
    if "return" not in query:
        assert "this-week-in-rust.org/newsletter" not in text
    assert 'action="http://127.0.0.1:8000/subscribe"' in text.replace("&#34;", '"').replace(
        "&quot;", '"')  # what a site owner needs: where the form posts
