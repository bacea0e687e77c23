"""The sign-up form is costly to abuse and stays open for people (issue 19, item 5).

Measured both sides: how many confirmation mails an attacker with N networks gets sent to
addresses of their choosing in an hour, and that a Gmail reader elsewhere still gets theirs.
The per-minute limit is lifted: an attacker meets it by pacing, so these posts stand for an
hour of paced requests.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mailer.config import get_settings
from mailer.web.app import create_app
from tests.fakes import RecordingTransport


@pytest.fixture
def make_app(mailer_env, engine, monkeypatch):
    def build(**env: str):
        for name, value in {"MAILER_SUBSCRIBE_RATE_PER_IP": "100000", **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        app = create_app(get_settings())
        app.state.transport = RecordingTransport()
        return app

    return build


def _from(app, ip: str) -> TestClient:
    return TestClient(app, client=(ip, 40000), follow_redirects=False)


def _attack(app, networks: list[str], posts_each: int) -> None:
    for n, ip in enumerate(networks):
        client = _from(app, ip)
        for k in range(posts_each):
            client.post("/subscribe", json={"email": f"junk{n}x{k}@gmail.com"})


def _mails(app) -> list[str]:
    return [message.to for message in app.state.transport.sent]


@pytest.mark.parametrize("networks", [1, 5, 20])
def test_an_attacker_gets_a_small_allowance_per_network_and_a_gmail_reader_still_gets_mail(
        make_app, networks):
    app = make_app()
    settings = get_settings()
    attackers = [f"198.51.100.{n + 1}" for n in range(networks)]
    _attack(app, attackers, posts_each=200)
    junk = len(_mails(app))
    # what an hour buys: the allowance of each network, far below the hourly cap
    assert junk == networks * settings.confirm_mails_per_network
    assert settings.confirm_mails_per_network * 10 <= settings.confirm_mails_per_hour
    # ... and the form is still open for readers, Gmail ones included
    reader = _from(app, "203.0.113.50").post("/subscribe", json={"email": "reader@gmail.com"})
    assert reader.status_code == 202
    form = _from(app, "203.0.113.51").post("/subscribe", data={"email": "other.reader@gmail.com"})
    assert form.status_code == 303
    assert _mails(app)[-2:] == ["reader@gmail.com", "other.reader@gmail.com"]


def test_a_network_over_its_allowance_is_asked_to_try_later_whatever_the_address(make_app):
    app = make_app(MAILER_CONFIRM_MAILS_PER_NETWORK="3")
    client = _from(app, "198.51.100.9")
    for n in range(3):
        assert client.post("/subscribe", json={"email": f"r{n}@example.org"}).status_code == 202
    known = client.post("/subscribe", json={"email": "r0@example.org"})
    new = client.post("/subscribe", json={"email": "new@example.org"})
    assert known.status_code == new.status_code == 429 and known.content == new.content
    assert int(new.headers["retry-after"]) >= 1 and "network" in new.json()["error"]
    page = client.post("/subscribe", data={"email": "new@example.org"})
    assert page.status_code == 429 and "try again" in page.text.lower()
    # one IPv6 /64 is one network, a different one is not held back
    v6 = [_from(app, f"2001:db8:1:2::{n:x}") for n in range(1, 6)]
    answers = [c.post("/subscribe", json={"email": f"v6r{n}@example.org"}).status_code
               for n, c in enumerate(v6)]
    assert answers == [202, 202, 202, 429, 429]
    assert _from(app, "203.0.113.7").post("/subscribe",
                                         json={"email": "late@example.org"}).status_code == 202


def test_mailbox_limited_posts_do_not_use_up_the_allowance(make_app):
    app = make_app(MAILER_CONFIRM_MAILS_PER_NETWORK="3")
    client = _from(app, "198.51.100.10")
    for n in range(10):  # one reader pressing the button again and again
        assert client.post("/subscribe", json={"email": f"me+{n}@example.org"}).status_code == 202
    assert client.post("/subscribe", json={"email": "friend@example.org"}).status_code == 202


def test_over_the_hourly_cap_a_network_s_first_sign_up_still_gets_through(make_app):
    app = make_app(MAILER_CONFIRM_MAILS_PER_HOUR="6", MAILER_CONFIRM_MAILS_PER_NETWORK="3")
    _attack(app, ["198.51.100.1", "198.51.100.2"], posts_each=3)  # the hour's cap, all junk
    assert len(_mails(app)) == 6
    again = _from(app, "198.51.100.1").post("/subscribe", json={"email": "more@example.org"})
    assert again.status_code == 429  # its own allowance is spent anyway
    # a reader on a network that has not signed anyone up this hour is not locked out ...
    reader = _from(app, "203.0.113.60").post("/subscribe", json={"email": "reader@gmail.com"})
    assert reader.status_code == 202 and _mails(app)[-1] == "reader@gmail.com"
    second = _from(app, "203.0.113.60").post("/subscribe", json={"email": "second@example.org"})
    assert second.status_code == 503 and "paused" in second.json()["error"]
    # ... up to a second cap's worth: a botnet of fresh networks cannot mail without end
    answers = [_from(app, f"192.0.2.{n}").post("/subscribe", json={"email": f"b{n}@example.org"})
               .status_code for n in range(1, 10)]
    assert answers == [202] * 5 + [503] * 4
    assert len(_mails(app)) == 12
