"""Admin brute force: failed log-ins are limited per network (/64 for IPv6) and globally, by the
same sliding-window limiter the subscribe form uses (issue 9, finding 5). The global count is an
alarm only: others' failures never lock an operator out (issue 19, item 4)."""

from __future__ import annotations


import pytest
from fastapi.testclient import TestClient
from tests.web_clients import PASSWORD, USER, basic_auth


# 40 characters of many kinds: a token of one repeated letter is now refused as too plain.
STRONG_TOKEN = "tok-7Qe2-Vb9x-Lm4K-pR8s-Zw3N-hY6d-Fj1c-Ua5"

@pytest.fixture
def make_app(mailer_env, engine, monkeypatch):
    from mailer.config import get_settings
    from mailer.web.app import create_app

    def build(**env: str):
        for name, value in {"MAILER_ADMIN_USER": USER, "MAILER_ADMIN_PASSWORD": PASSWORD,
                            **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return create_app(get_settings())

    return build


def _from(app, ip: str) -> TestClient:
    return TestClient(app, client=(ip, 40000))


def test_thirty_guesses_from_one_ipv6_64_are_locked_out(make_app):
    app = make_app()
    answers = [_from(app, f"2001:db8:5:7::{n:x}").get("/admin", headers=basic_auth(USER, "guess")).status_code
               for n in range(1, 31)]
    assert answers[:10] == [401] * 10
    assert set(answers[10:]) == {429}
    # the right password from yet another address in that /64 waits too
    assert _from(app, "2001:db8:5:7::ffff").get("/admin", headers=basic_auth(USER, PASSWORD)).status_code == 429
    # another network is not punished for it
    assert _from(app, "2001:db8:5:8::1").get("/admin", headers=basic_auth(USER, PASSWORD)).status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_flood_of_failures_from_many_networks_never_locks_an_operator_out(make_app, caplog):
    app = make_app(MAILER_ADMIN_FAILED_LOGINS_GLOBAL="100", MAILER_ADMIN_TOKEN=STRONG_TOKEN)
    attackers = [f"198.51.{n}.7" for n in range(15)]
    for ip in attackers:  # 150 failures: over the global alarm, each network over its own limit
        for _ in range(10):
            assert _from(app, ip).get("/admin", headers=basic_auth(USER, "guess")).status_code == 401
    operator = _from(app, "203.0.113.9")
    assert operator.get("/admin", headers=basic_auth(USER, PASSWORD)).status_code == 200
    assert operator.get("/admin", headers=_bearer(STRONG_TOKEN)).status_code == 200
    # an attacking network is stopped, a right guess included: it is not checked at all
    for ip in attackers:
        refused = _from(app, ip).get("/admin", headers=basic_auth(USER, PASSWORD))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    # the operator learns of the flood from the log, once
    alarms = [r for r in caplog.records if "failed operator log-ins" in r.getMessage()]
    assert len(alarms) == 1 and alarms[0].levelname == "WARNING"


def test_right_logins_do_not_count_against_anyone(make_app):
    app = make_app(MAILER_ADMIN_FAILED_LOGINS_GLOBAL="3")
    client = _from(app, "192.0.2.1")
    for _ in range(30):
        assert client.get("/admin", headers=basic_auth(USER, PASSWORD)).status_code == 200


def test_the_limiter_slides_and_reports_the_wait():
    from mailer.web.limiter import SlidingWindowLimiter

    now = [1000.0]
    limiter = SlidingWindowLimiter(2, window=60, clock=lambda: now[0])
    assert limiter.hit("a") is None and limiter.hit("a") is None
    assert limiter.hit("a") == pytest.approx(60.0)
    assert limiter.blocked("b") is None
    now[0] += 30
    assert limiter.blocked("a") == pytest.approx(30.0)
    now[0] += 30.5
    assert limiter.blocked("a") is None
    limiter.record("c")
    limiter.record("c")
    assert limiter.blocked("c") is not None
