"""Subscription bombing (issue 9, finding 4): confirmation mails are limited per mailbox (its
+tag and -tag forms, subdomains, Gmail's dots and googlemail.com count as one), per domain from
one source and per hour in total.
Over the total, sign-ups are refused politely and the operator is told; no answer ever shows
whether an address is known."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from mailer.config import get_settings
from mailer.web.app import create_app
from tests.fakes import RecordingTransport


@pytest.fixture
def make_client(mailer_env, engine, monkeypatch):
    def build(**env: str):
        for name, value in {"MAILER_SUBSCRIBE_RATE_PER_IP": "1000", **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        app = create_app(get_settings())
        app.state.transport = RecordingTransport()
        return TestClient(app, follow_redirects=False)

    return build


def recipients(client) -> list[str]:
    return [message.to for message in client.app.state.transport.sent]


def test_canonical_mailbox_folds_tags_dots_and_googlemail():
    from mailer.store.signups import canonical_mailbox

    assert canonical_mailbox("bomb+1@example.org") == "bomb@example.org"
    assert canonical_mailbox("Bomb+a+b@Example.ORG") == "bomb@example.org"
    assert canonical_mailbox("b.o.m.b@gmail.com") == "bomb@gmail.com"
    assert canonical_mailbox("B.omb+x@googlemail.com") == "bomb@gmail.com"
    assert canonical_mailbox("first.last@example.org") == "first.last@example.org"  # dots matter
    assert canonical_mailbox("+tag@example.org") == "+tag@example.org"  # nothing before the tag


def test_the_limit_key_also_folds_hyphen_tags_and_subdomains():
    from mailer.addresses import limit_mailbox

    assert limit_mailbox("victim-1@example.org") == "victim@example.org"
    assert limit_mailbox("Victim-a-b+c@Mail.Example.ORG") == "victim@example.org"
    assert limit_mailbox("x@victim.sub.example") == "x@sub.example"
    assert limit_mailbox("x@a.victim.co.uk") == "x@victim.co.uk"  # a two-level public suffix
    assert limit_mailbox("v.ictim-2@googlemail.com") == "victim@gmail.com"
    assert limit_mailbox("-tag@example.org") == "-tag@example.org"  # nothing before the tag


@pytest.mark.parametrize("variant", ["victim-{n}@example.org", "x@s{n}.victim.example",
                                     "x@s{n}.victim.co.uk", "victim-{n}+t{n}@mail{n}.example.org"])
def test_hyphen_and_subdomain_variants_count_as_one_mailbox(make_client, variant):
    client = make_client()
    answers = {client.post("/subscribe", json={"email": variant.format(n=n)}).content
               for n in range(1, 9)}
    assert len(answers) == 1
    sent = recipients(client)
    assert len(sent) == get_settings().confirm_mails_per_mailbox == 2
    assert sent == [variant.format(n=1), variant.format(n=2)]  # stored and mailed as typed


def test_ten_tagged_posts_put_at_most_the_mailbox_limit_in_one_mailbox(make_client):
    client = make_client()
    answers = {client.post("/subscribe", json={"email": f"bomb+{n}@example.org"}).content
               for n in range(1, 11)}
    assert len(answers) == 1  # every post got the same answer
    assert len(recipients(client)) == get_settings().confirm_mails_per_mailbox == 2


def test_gmail_dots_and_googlemail_count_as_one_mailbox(make_client):
    client = make_client(MAILER_CONFIRM_MAILS_PER_MAILBOX="1")
    for address in ("victim@gmail.com", "v.ictim@gmail.com", "vi.c.tim+x@gmail.com",
                    "victim@googlemail.com", "V.I.C.T.I.M@googlemail.com"):
        assert client.post("/subscribe", json={"email": address}).status_code == 202
    assert len(recipients(client)) == 1


def test_a_per_domain_limit_refuses_politely_and_spares_other_domains_and_networks(make_client):
    client = make_client(MAILER_CONFIRM_MAILS_PER_DOMAIN="3")
    for n in range(3):
        assert client.post("/subscribe", json={"email": f"r{n}@example.net"}).status_code == 202
    refused = client.post("/subscribe", json={"email": "late@example.net"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "example.net" in refused.json()["error"]
    form = client.post("/subscribe", data={"email": "late@example.net"})
    assert form.status_code == 429 and "try again" in form.text.lower()
    assert client.post("/subscribe", json={"email": "fine@example.com"}).status_code == 202
    # the limit is per source: a reader at example.net elsewhere is not held back (issue 19)
    elsewhere = TestClient(client.app, client=("203.0.113.8", 40000), follow_redirects=False)
    assert elsewhere.post("/subscribe", json={"email": "late@example.net"}).status_code == 202
    assert len(recipients(client)) == 5


def test_the_global_cap_pauses_sign_ups_politely_and_warns_the_operator(make_client, caplog):
    client = make_client(MAILER_CONFIRM_MAILS_PER_HOUR="3")
    for n in range(3):
        assert client.post("/subscribe", json={"email": f"r{n}@d{n}.example"}).status_code == 202
    caplog.set_level(logging.WARNING)
    paused_new = client.post("/subscribe", json={"email": "new@else.example"})
    paused_known = client.post("/subscribe", json={"email": "r0@d0.example"})
    assert paused_new.status_code == paused_known.status_code == 503
    assert paused_new.content == paused_known.content  # still nothing about the address
    assert int(paused_new.headers["retry-after"]) >= 1
    assert "paused" in paused_new.json()["error"]
    page = client.post("/subscribe", data={"email": "new@else.example"})
    assert page.status_code == 503 and "paused" in page.text
    warnings = [r.getMessage() for r in caplog.records if "MAILER_CONFIRM_MAILS_PER_HOUR" in r.getMessage()]
    assert len(warnings) == 1  # once per trip, not once per refused reader
    assert len(recipients(client)) == 3

    from mailer.web.public import signup_pressure

    pressure = signup_pressure(client.app)
    assert pressure.paused and pressure.last_hour == 3 and pressure.cap == 3


def test_admin_shows_a_banner_while_sign_ups_are_paused(make_client):
    token = "signup-limits-operator-token-0123456789"  # "t" * 32 is refused as too plain
    client = make_client(MAILER_CONFIRM_MAILS_PER_HOUR="2", MAILER_ADMIN_TOKEN=token)
    auth = {"Authorization": "Bearer " + token}
    assert "Sign-ups are paused" not in client.get("/admin", headers=auth).text
    for n in range(3):
        client.post("/subscribe", json={"email": f"r{n}@d{n}.example"})
    page = client.get("/admin", headers=auth)
    assert page.status_code == 200
    assert "Sign-ups are paused" in page.text and "MAILER_CONFIRM_MAILS_PER_HOUR (2)" in page.text


def test_a_sign_up_accepted_before_a_stop_is_handled_at_the_next_start(make_client, engine, settings):
    from mailer.store import signups
    from mailer.store.db import session

    with session(engine) as db:  # accepted, then the server stopped before handling it
        signups.queue_signup(db, "patient@example.org", ip="192.0.2.1", secret=settings.secret_key,
                             limits=signups.SignupLimits(2, 100, 500))
    client = make_client()
    assert recipients(client) == []
    with client:  # start-up
        assert recipients(client) == ["patient@example.org"]
    with client:  # handled once only
        assert recipients(client) == ["patient@example.org"]


def test_two_serve_processes_handling_the_same_leftover_mail_it_once(engine, settings, monkeypatch):
    """Several `serve` processes each handle the leftover sign-ups at start-up. When both pick up
    the same queued request at the same moment, one handles it: one confirmation, not two."""
    import threading

    from mailer.store import signups
    from mailer.store.db import session
    from mailer.subscriptions import workflow

    with session(engine) as db:
        request_id = signups.queue_signup(db, "twice@example.org", ip="192.0.2.9",
                                          secret=settings.secret_key,
                                          limits=signups.SignupLimits(2, 100, 500))
    inside = threading.Barrier(2, timeout=3)  # both processes inside the handling at once
    real = workflow.request_subscription

    def meet_then_subscribe(*args, **kwargs):
        try:
            inside.wait()
        except threading.BrokenBarrierError:  # the other one is waiting for our claim: go on
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(workflow, "request_subscription", meet_then_subscribe)
    outcomes = []

    def handle():
        with session(engine) as db:
            outcomes.append(workflow.handle_signup(db, request_id, secret=settings.secret_key,
                                                   min_interval=0))

    workers = [threading.Thread(target=handle) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    handled = [outcome for outcome in outcomes if outcome is not None]
    assert len(outcomes) == 2 and len(handled) == 1 and handled[0].confirm_token
