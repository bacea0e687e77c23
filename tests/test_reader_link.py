"""Mail me my link (issue 26): a reader with no issue at hand types their address on ``/manage``
and gets the link to their own page, at the address on file only. Through the web app and the
outbox: who gets a mail, that the link works, and that nobody learns from the answer who reads
the newsletter."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from mailer.store.db import session
from mailer.store.models import Subscriber

from mailer.tokens import make_manage_token
from mailer.web.app import create_app
from mailer.web.manage import LINK_MAILS_PER_HOUR, LINK_REQUESTS_PER_HOUR
from tests.fakes import add_readers
from tests.mailer_cli import mailer, outbox

ON_ITS_WAY = "If this address is on our list, a link to your page is on its way."


@pytest.fixture
def client(settings, engine):
    """The app with its configured transport: the outbox (a Maildir under the test's folder)."""
    with TestClient(create_app(settings), base_url="http://testserver",
                    follow_redirects=False) as test_client:
        yield test_client


def ask(client, address: str, **extra: str):
    return client.post("/manage", data={"email": address, **extra})


def link_in(message) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(r"https?://\S+/manage/\S+", text).group(0)


def reader_id(engine, address: str) -> int:
    with session(engine) as db:
        return db.exec(select(Subscriber.id).where(Subscriber.email == address)).one()


def test_a_reader_on_the_list_gets_one_mail_whose_link_opens_their_page(
        client, engine, settings, mailer_env):
    add_readers(engine, "Ann@example.org")
    form = client.get("/manage")
    assert form.status_code == 200 and 'action="/manage"' in form.text
    answer = ask(client, "ann@EXAMPLE.org")  # as a reader types it, not as the list spells it
    assert answer.status_code == 200 and ON_ITS_WAY in answer.text
    [mail] = outbox(mailer_env)
    assert mail["To"] == "Ann@example.org"  # the address on file, not the one typed
    url = link_in(mail)
    assert url == (f"{settings.base_url}/manage/"
                   f"{make_manage_token(settings.secret_key, reader_id(engine, 'Ann@example.org'))}")
    page = client.get(url.removeprefix(settings.base_url))
    assert page.status_code == 200 and "Ann@example.org" in page.text and "receives" in page.text


def test_unknown_forgotten_unsubscribed_and_suppressed_addresses_get_no_mail_and_the_same_answer(
        client, engine, mailer_env):
    add_readers(engine, "kept@example.org")
    add_readers(engine, "left@example.org", status="unsubscribed")
    add_readers(engine, "gone@example.org", status="bounced")
    add_readers(engine, "spam@example.org", status="complained")
    add_readers(engine, "erased@example.org")
    assert mailer(mailer_env, "subscribers", "forget", "erased@example.org", "--yes").returncode == 0
    known = ask(client, "kept@example.org")
    others = [ask(client, address) for address in (
        "nobody@example.org", "erased@example.org", "left@example.org", "gone@example.org",
        "spam@example.org", "nobody@no-such-domain.example")]
    assert [m["To"] for m in outbox(mailer_env)] == ["kept@example.org"]
    for answer in others:  # neither status, headers that differ nor a word tells them apart
        assert answer.status_code == known.status_code == 200
        assert answer.text == known.text
        assert answer.headers.keys() == known.headers.keys()


def test_a_pending_reader_gets_the_link_too(client, engine, mailer_env):
    add_readers(engine, "new@example.org", status="pending")
    ask(client, "new@example.org")
    assert [m["To"] for m in outbox(mailer_env)] == ["new@example.org"]


def test_one_mailbox_gets_a_few_mails_an_hour_whatever_its_spelling_and_the_answer_stays_the_same(
        client, engine, mailer_env):
    add_readers(engine, "ann.lee@gmail.com", "bob@example.org")
    asked = [ask(client, "ann.lee@gmail.com") for _ in range(LINK_MAILS_PER_HOUR)]
    assert [m["To"] for m in outbox(mailer_env)] == ["ann.lee@gmail.com"] * LINK_MAILS_PER_HOUR
    # then the same mailbox however spelt: the address on file, a tag, Gmail's dots and domain
    more = [ask(client, spelling) for spelling in (
        "ann.lee@gmail.com", "Ann.Lee@gmail.com", "annlee+news@gmail.com", "a.nn.lee@googlemail.com")]
    assert len(outbox(mailer_env)) == LINK_MAILS_PER_HOUR
    answers = asked + more
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1  # the dropped ones are not told apart
    ask(client, "bob@example.org")  # another reader's allowance is their own
    assert [m["To"] for m in outbox(mailer_env)][-1] == "bob@example.org"


def test_a_network_asks_a_few_times_an_hour_whatever_the_address(client, engine, mailer_env):
    add_readers(engine, "ann@example.org")
    answers = [ask(client, f"reader{n}@example.org").status_code
               for n in range(LINK_REQUESTS_PER_HOUR)]
    refused = ask(client, "ann@example.org")
    assert set(answers) == {200}
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert "ann@example.org" not in refused.text
    assert outbox(mailer_env) == []


@pytest.mark.parametrize("typed", ["", "not an address", "ann@", "a\r\nBcc: x@example.org"])
def test_text_that_is_no_address_gets_the_sign_up_forms_error_and_nothing_is_mailed(
        client, engine, mailer_env, typed):
    add_readers(engine, "ann@example.org")
    answer = ask(client, typed)
    assert answer.status_code == 422
    assert 'role="alert"' in answer.text and ON_ITS_WAY not in answer.text
    assert "Traceback" not in answer.text
    assert outbox(mailer_env) == []


def test_a_bot_filling_the_trap_field_is_answered_the_same_and_mails_nobody(
        client, engine, mailer_env):
    add_readers(engine, "ann@example.org")
    answer = ask(client, "ann@example.org", website="https://spam.example")
    assert answer.status_code == 200 and ON_ITS_WAY in answer.text
    assert outbox(mailer_env) == []


def test_the_page_has_the_public_pages_headers_and_a_broken_reader_link_leads_to_it(
        client, settings):
    form = client.get("/manage")
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert form.headers["x-frame-options"] == "DENY" and form.headers["cache-control"] == "no-store"
    broken = client.get(f"/manage/{make_manage_token(settings.secret_key, 7)[:-4]}")
    assert broken.status_code == 400 and 'href="/manage"' in broken.text
    assert 'href="/manage"' in client.get("/subscribe").text
