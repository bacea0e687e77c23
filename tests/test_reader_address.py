"""Change my address on the reader's own page (issue 26), end to end through the web app and
the mail it hands the transport: what the reader, the owner of the new address, the old
address and the operator see, and that nobody learns from it who else reads the newsletter."""

from __future__ import annotations

import base64
import re
import time as real_time
from types import SimpleNamespace

import pytest
from sqlalchemy import func
from sqlmodel import select

from mailer.domain import SubscriberStatus
from mailer.store.db import session
from mailer.store.models import Subscriber, SubscriberChange
from mailer.tokens import make_manage_token
from mailer.web.manage import ADDRESS_MAILS_PER_HOUR
from tests.fakes import add_readers

ADMIN_USER, ADMIN_PASSWORD = "operator", "Quartz-lantern-9 harbour"
CHECK_INBOX = "Check your inbox at the new address"


BOTH_DATABASES = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def database(request, mailer_env, monkeypatch):
    """A real SQLite file, or (parametrized by BOTH_DATABASES) a fresh PostgreSQL database."""
    from mailer.config import get_settings
    from mailer.store.db import reset_engines

    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        monkeypatch.setenv("MAILER_DATABASE_URL", request.getfixturevalue("pg_url"))
    monkeypatch.setenv("MAILER_ADMIN_USER", ADMIN_USER)
    monkeypatch.setenv("MAILER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    get_settings.cache_clear()
    reset_engines()
    return kind


@pytest.fixture
def settings(database):
    from mailer.config import get_settings

    return get_settings()


def rows(engine) -> list[tuple[int, str, str]]:
    with session(engine) as db:
        return [(s.id, s.email, str(s.status)) for s in
                db.exec(select(Subscriber).order_by(Subscriber.id)).all()]


def reader(engine, email: str) -> Subscriber:
    with session(engine) as db:
        return db.exec(select(Subscriber).where(
            func.lower(Subscriber.email) == email.lower())).one()


def confirmed_reader(client, transport, engine, email: str) -> Subscriber:
    """A reader who signed up on the form and clicked the confirmation mail's link."""
    client.post("/subscribe", json={"email": email})
    client.post(link_in(transport.sent[-1], "/confirm/"))
    return reader(engine, email)


def page_of(settings, subscriber: Subscriber) -> str:
    return f"/manage/{make_manage_token(settings.secret_key, subscriber.id)}"


def link_in(message, marker: str) -> str:
    line = next(line for line in message.text.splitlines() if marker in line)
    return marker + line.rsplit(marker, 1)[1].strip()


def mail_to(transport, address: str) -> list:
    return [m for m in transport.sent if m.to == address]


def active_rows_for(engine, *addresses: str) -> int:
    with session(engine) as db:
        return len(db.exec(select(Subscriber).where(
            func.lower(Subscriber.email).in_([a.lower() for a in addresses]),
            Subscriber.status == SubscriberStatus.ACTIVE)).all())


# -- the whole change ---------------------------------------------------------------------------

def test_a_change_waits_for_the_new_addresss_click_then_moves_the_same_reader(
        client, transport, engine, settings, mailer_env):
    from typer.testing import CliRunner

    from mailer.cli import app
    from mailer.config import get_settings
    from tests.mailer_cli import outbox

    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    page = page_of(settings, ann)
    assert 'action="' + page + '/address"' in client.get(page).text

    asked = client.post(f"{page}/address", data={"email": "Nova@Example.net"})
    assert asked.status_code == 200 and CHECK_INBOX in asked.text
    (confirm_mail,) = mail_to(transport, "Nova@example.net")
    link = link_in(confirm_mail, "/confirm/address/")
    assert "a***@example.org" in confirm_mail.text and "ann@example.org" not in confirm_mail.text
    assert "/manage/" not in confirm_mail.text  # the new address gets no key to the page
    assert "waits for the link mailed there" in client.get(page).text
    assert client.post(f"{page}/export").json()["pending_address"] == "Nova@example.net"

    get_settings.cache_clear()  # until the click, the old address keeps getting the issues
    sent = CliRunner().invoke(app, ["send", "--issue", "644", "--yes"])
    assert sent.exit_code == 0, sent.output
    assert [m["To"] for m in outbox(mailer_env)] == ["ann@example.org"]
    assert rows(engine) == [(ann.id, "ann@example.org", "active")]

    shown = client.get(link)  # a mail scanner's GET changes nothing
    assert shown.status_code == 200
    assert "a***@example.org" in shown.text and "Nova@example.net" in shown.text
    assert "ann@example.org" not in shown.text  # the new mailbox learns no more than the mail said
    assert rows(engine) == [(ann.id, "ann@example.org", "active")]

    done = client.post(link)
    assert done.status_code == 200 and "now goes to <strong>Nova@example.net" in done.text
    assert f'href="{page}"' in done.text
    assert rows(engine) == [(ann.id, "Nova@example.net", "active")]  # the same row, moved
    (notice,) = mail_to(transport, "ann@example.org")[1:]  # after the sign-up's confirmation
    assert "N***@example.net" in notice.text and "If this was not you" in notice.text
    assert "/confirm/" not in notice.text

    data = client.post(f"{page}/export").json()  # history, consent, deliveries: one reader
    assert data["address"] == "Nova@example.net" and data["consent"]["confirmed_at"]
    assert [d["address"] for d in data["deliveries"]] == ["ann@example.org"]
    moved = [c for c in data["status_history"] if c["source"] == "reader page"]
    assert moved and moved[0]["detail"]["address_changed_from"] == "ann@example.org"
    assert "receives" in client.get(page).text and "Nova@example.net" in client.get(page).text

    basic = base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
    console = client.get(f"/admin/readers/{ann.id}", headers={"Authorization": f"Basic {basic}"})
    assert console.status_code == 200
    assert "address changed" in console.text and "reader page" in console.text

    again = client.post(link)  # confirming twice: a clear page, nothing more happens
    assert again.status_code == 410 and "already used" in again.text
    assert rows(engine) == [(ann.id, "Nova@example.net", "active")]
    assert len(transport.sent) == 3  # sign-up confirm, new-address link, old-address notice


def test_a_taken_address_gets_the_same_answer_and_only_a_notice(
        client, transport, engine, settings):
    from mailer.store.subscribers import forget_subscriber

    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    add_readers(engine, "bob@example.org")
    add_readers(engine, "gone@example.org", status="unsubscribed")
    add_readers(engine, "bounced@example.org", status="bounced")
    with session(engine) as db:
        forget_subscriber(db, "erased@example.org", secret=settings.secret_key)
    before = rows(engine)
    page = page_of(settings, ann)
    mails = len(transport.sent)

    free = client.post(f"{page}/address", data={"email": "free@example.org"})
    link_in(mail_to(transport, "free@example.org")[0], "/confirm/address/")  # a real link
    answers = {}
    for taken in ("BOB@example.org", "gone@example.org", "bounced@example.org",
                  "erased@example.org"):
        if len(answers) == ADDRESS_MAILS_PER_HOUR - 1:  # a fresh reader: the hourly allowance
            ann = confirmed_reader(client, transport, engine, f"ann{len(answers)}@example.org")
            page, before, mails = page_of(settings, ann), rows(engine), len(transport.sent)
        answer = client.post(f"{page}/address", data={"email": taken})
        answers[taken] = answer
        assert answer.status_code == free.status_code == 200, taken
        assert CHECK_INBOX in answer.text and "already" not in answer.text, taken

    assert answers["BOB@example.org"].text == free.text  # word for word, the same reader
    (notice,) = mail_to(transport, "bob@example.org")
    assert "already on our list, so nothing was changed" in notice.text
    assert "/confirm/" not in notice.text and "/manage/" not in notice.text
    # no mail at all to an address that left, bounced or asked to be forgotten
    assert not [m for m in transport.sent[mails:] if m.to != "bob@example.org"]
    for address in ("gone@example.org", "bounced@example.org", "erased@example.org"):
        assert not mail_to(transport, address), address
    assert rows(engine) == before  # no row moved, merged or added


def test_a_bad_or_the_same_address_is_a_clear_form_error_and_changes_nothing(
        client, transport, engine, settings):
    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    page = page_of(settings, ann)
    mails = len(transport.sent)
    for typed, status, message in (("not an address", 422, "not a valid e-mail address"),
                                   ("", 422, "enter your e-mail address"),
                                   ("evil@example.org\r\nBcc: x@example.org", 422,
                                    "does not look like an e-mail"),
                                   ("ANN@example.org", 400, "already the address")):
        answer = client.post(f"{page}/address", data={"email": typed})
        assert answer.status_code == status, typed
        assert message in answer.text and "Traceback" not in answer.text, typed
        assert 'name="email"' in answer.text  # the form again, to correct it
    assert len(transport.sent) == mails
    assert reader(engine, "ann@example.org").new_email is None
    assert client.get(f"{page}/address").status_code == 200  # the form alone: a GET
    assert reader(engine, "ann@example.org").new_email is None

    unsubscribe = re.search(r'action="(/unsubscribe/[^"]+)"', client.get(page).text)[1]
    client.post(unsubscribe)  # a reader who gets no newsletter has no address to move
    assert 'action="' + page + '/address"' not in client.get(page).text
    refused = client.post(f"{page}/address", data={"email": "new@example.net"})
    assert refused.status_code == 400 and "Only a subscription that receives" in refused.text
    assert len(transport.sent) == mails and reader(engine, "ann@example.org").new_email is None


def test_a_reader_asks_a_few_times_an_hour_then_is_told_to_wait(
        client, transport, engine, settings):
    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    page = page_of(settings, ann)
    for n in range(ADDRESS_MAILS_PER_HOUR):
        assert client.post(f"{page}/address", data={"email": f"n{n}@example.net"}).status_code == 200
    refused = client.post(f"{page}/address", data={"email": "one-more@example.net"})
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert "several times in the last hour" in refused.text
    assert not mail_to(transport, "one-more@example.net")
    assert reader(engine, "ann@example.org").new_email == f"n{ADDRESS_MAILS_PER_HOUR - 1}@example.net"


# -- links that must not work ----------------------------------------------------------------------

def test_forged_foreign_replaced_and_expired_links_change_nothing(
        client, transport, engine, settings):
    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    signup_link = link_in(mail_to(transport, "ann@example.org")[0], "/confirm/")
    page = page_of(settings, ann)
    client.post(f"{page}/address", data={"email": "first@example.net"})
    first = link_in(mail_to(transport, "first@example.net")[0], "/confirm/address/")
    client.post(f"{page}/address", data={"email": "second@example.net"})
    second = link_in(mail_to(transport, "second@example.net")[0], "/confirm/address/")
    before = rows(engine)

    token = second.rsplit("/", 1)[1]
    for bad, status in ((first, 400),  # replaced by the newer request
                        (second[:-4] + "AAAA", 400),  # forged
                        ("/confirm/address/" + signup_link.rsplit("/", 1)[1], 400),
                        (f"/confirm/{token}", 400)):  # an address link is no sign-up link
        for method in (client.get, client.post):
            answer = method(bad)
            assert answer.status_code == status, (bad, method)
            assert "Traceback" not in answer.text
            assert "nothing was changed" in answer.text or "not valid" in answer.text
    assert rows(engine) == before

    later = real_time.time() + settings.confirm_token_max_age + 60
    with pytest.MonkeyPatch.context() as clock:  # the link's age is past MAILER_CONFIRM_TOKEN_MAX_AGE
        clock.setattr("itsdangerous.timed.time", SimpleNamespace(time=lambda: later))
        expired = client.post(second)
    assert expired.status_code == 410 and "expired" in expired.text
    assert rows(engine) == before
    assert client.post(second).status_code == 200  # still good within its age


@pytest.mark.parametrize("since", ["changed again", "unsubscribed", "erased"])
def test_a_link_for_an_address_that_is_no_longer_the_readers_changes_nothing(
        client, transport, engine, settings, since):
    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    page = page_of(settings, ann)
    client.post(f"{page}/address", data={"email": "new@example.net"})
    link = link_in(mail_to(transport, "new@example.net")[0], "/confirm/address/")
    if since == "changed again":
        client.post(f"{page}/address", data={"email": "other@example.net"})
        client.post(link_in(mail_to(transport, "other@example.net")[0], "/confirm/address/"))
    elif since == "unsubscribed":
        unsubscribe = re.search(r'action="(/unsubscribe/[^"]+)"', client.get(page).text)[1]
        assert client.post(unsubscribe).status_code == 200
        with session(engine) as db:  # and back (as by an operator's hand): the old link stays dead
            row = db.get(Subscriber, ann.id)
            row.status = SubscriberStatus.ACTIVE
            db.add(row)
            db.commit()
    else:
        assert client.post(f"{page}/erase").status_code == 200
    before = rows(engine)

    answer = client.post(link)
    assert answer.status_code == 400 and "nothing was changed" in answer.text, answer.text
    assert "new@example.net" not in [email for _, email, _ in rows(engine)]
    assert rows(engine) == before


# -- the invariant: one reader, one row, on both databases ---------------------------------------

@BOTH_DATABASES
def test_two_readers_moving_to_one_address_never_make_two_rows_or_none(
        client, transport, engine, settings):
    """Both ask while the address is free; the first click moves its reader, the second is
    refused on a clear page; a sign-up of the address meanwhile refuses the change too."""
    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    bob = confirmed_reader(client, transport, engine, "bob@example.org")
    cat = confirmed_reader(client, transport, engine, "cat@example.org")
    links = {}
    for who in (ann, bob):
        client.post(f"{page_of(settings, who)}/address", data={"email": "shared@example.net"})
        links[who.email] = link_in(mail_to(transport, "shared@example.net")[-1],
                                   "/confirm/address/")
    client.post(f"{page_of(settings, cat)}/address", data={"email": "late@example.net"})
    late_link = link_in(mail_to(transport, "late@example.net")[-1], "/confirm/address/")

    assert client.post(links["ann@example.org"]).status_code == 200
    refused = client.post(links["bob@example.org"])
    assert refused.status_code == 400 and "already on our list" in refused.text
    client.post("/subscribe", json={"email": "late@example.net"})  # the address signs up
    assert client.post(late_link).status_code == 400

    assert rows(engine) == [(ann.id, "shared@example.net", "active"),
                            (bob.id, "bob@example.org", "active"),
                            (cat.id, "cat@example.org", "active"),
                            (cat.id + 1, "late@example.net", "pending")]
    assert active_rows_for(engine, "ann@example.org", "shared@example.net") == 1
    assert active_rows_for(engine, "bob@example.org") == 1


@BOTH_DATABASES
def test_the_confirming_click_moves_the_address_in_one_step(client, transport, engine, settings):
    """Between the request and the click, the reader has exactly one active row (the old
    address); after it, exactly one (the new); at no point none or two."""
    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    page = page_of(settings, ann)
    client.post(f"{page}/address", data={"email": "moved@example.net"})
    assert active_rows_for(engine, "ann@example.org", "moved@example.net") == 1
    assert reader(engine, "ann@example.org").id == ann.id
    client.post(link_in(mail_to(transport, "moved@example.net")[0], "/confirm/address/"))
    assert active_rows_for(engine, "ann@example.org", "moved@example.net") == 1
    assert reader(engine, "moved@example.net").id == ann.id
    with session(engine) as db:
        sources = [c.source for c in db.exec(select(SubscriberChange).where(
            SubscriberChange.subscriber_id == ann.id)).all()]
    assert sources.count("reader page") == 1
