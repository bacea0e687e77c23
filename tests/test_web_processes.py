"""Two real `mailer serve` processes on one database behave as one (issue 21, section 4): the
failed-log-in limit and the subscribe limit hold across both, whichever process a request
reaches, and /admin shows the same figures on both after a write through either. On SQLite and
on PostgreSQL. The client's network comes in X-Forwarded-For, as from Caddy in front of both."""

from __future__ import annotations

import hashlib
import hmac
import itertools

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.web_clients import basic_auth

pytestmark = pytest.mark.slow

USER, PASSWORD = "operator", "a long operator password 7Qe2"
SUBSCRIBES_PER_MINUTE = 4


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, mailer_env) -> str:
    """The one database both servers share, its schema made here first (as `mailer db upgrade`
    would), so neither server spends its start-up deadline migrating it."""
    from mailer.store.db import get_engine

    url = (mailer_env["MAILER_DATABASE_URL"] if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    get_engine(url)
    return url


@pytest.fixture
def two_servers(web_server_factory, database_url, monkeypatch) -> list[str]:
    from tests.plugins import web_peer

    # two servers starting one after the other on a busy CI machine: give each more time
    monkeypatch.setattr(web_peer, "STARTUP_TIMEOUT", 90.0)
    env = {"MAILER_DATABASE_URL": database_url, "MAILER_ADMIN_USER": USER,
           "MAILER_ADMIN_PASSWORD": PASSWORD, "MAILER_TRUSTED_PROXIES": "127.0.0.1/32",
           "MAILER_SUBSCRIBE_RATE_PER_IP": str(SUBSCRIBES_PER_MINUTE),
           "MAILER_CONFIRM_MAILS_PER_NETWORK": "100"}
    return [web_server_factory(env), web_server_factory(env)]


def _from(network: str) -> dict[str, str]:
    return {"X-Forwarded-For": network}


def _log_in(url: str, password: str, network: str) -> int:
    return httpx.get(f"{url}/admin", headers={**basic_auth(USER, password), **_from(network)},
                     timeout=30).status_code


def test_failed_log_ins_split_across_two_processes_are_limited_as_one(two_servers):
    a, b = two_servers
    guesses = [_log_in(url, "wrong guess", "203.0.113.7")
               for url in itertools.islice(itertools.cycle(two_servers), 10)]
    assert guesses == [401] * 10  # five on each process
    # the 11th failure from that network is refused, whichever process gets it
    assert _log_in(a, "wrong guess", "203.0.113.7") == 429
    assert _log_in(b, "wrong guess", "203.0.113.7") == 429
    # the right password from that network waits too, on both
    assert _log_in(a, PASSWORD, "203.0.113.7") == 429
    assert _log_in(b, PASSWORD, "203.0.113.7") == 429
    # another network is not held back by it
    assert _log_in(b, PASSWORD, "198.51.100.9") == 200


def _subscribe(url: str, n: int, network: str) -> int:
    return httpx.post(f"{url}/subscribe", data={"email": f"reader{n}@domain{n}.example"},
                      headers={**_from(network), "Accept": "application/json"},
                      timeout=30).status_code


def test_the_subscribe_limit_holds_across_two_processes(two_servers):
    a, b = two_servers
    answers = [_subscribe(url, n, "192.0.2.44")
               for n, url in enumerate(itertools.islice(itertools.cycle(two_servers),
                                                        SUBSCRIBES_PER_MINUTE))]
    assert 429 not in answers
    assert _subscribe(a, 100, "192.0.2.44") == 429
    assert _subscribe(b, 101, "192.0.2.44") == 429
    assert _subscribe(b, 102, "192.0.2.45") != 429  # the next address is another client


def _figures(url: str) -> dict:
    response = httpx.get(f"{url}/admin/stats.json", headers=basic_auth(USER, PASSWORD), timeout=60)
    assert response.status_code == 200
    return response.json()


def _csrf(authorization: str) -> str:
    """The console's form token, as mailer.web.console.render.csrf_token makes it."""
    who = hashlib.sha256(authorization.encode()).digest()
    return hmac.new(TEST_SECRET.encode(), b"mailer.admin.csrf.v1|" + who, hashlib.sha256).hexdigest()


def _unsubscribe_through(url: str, reader_id: int) -> None:
    headers = basic_auth(USER, PASSWORD)
    response = httpx.post(f"{url}/admin/readers/{reader_id}/unsubscribe",
                          data={"reason": "asked by mail", "csrf_token": _csrf(headers["Authorization"])},
                          headers=headers, timeout=60)
    assert response.status_code == 303, response.text


def _late_bounce(database_url: str, issue_number: int) -> None:
    """An SES bounce for a finished campaign, stored as events.apply stores one."""
    from datetime import UTC, datetime

    from sqlmodel import select

    from mailer.store.db import get_engine, session
    from mailer.store.models import Campaign, Delivery, DeliveryEventRecord

    with session(get_engine(database_url)) as db:
        campaign = db.exec(select(Campaign).where(Campaign.issue_number == issue_number)).one()
        row = db.exec(select(Delivery).where(Delivery.campaign_id == campaign.id,
                                             Delivery.bounced_at.is_(None))).first()
        now = datetime.now(UTC)
        row.bounced_at, row.bounce_type, row.delivered_at = now, "permanent", None
        db.add(row)
        db.add(DeliveryEventRecord(event_key="late-bounce-two-processes", kind="bounce",
                                   recipient=row.email, occurred_at=now, delivery_id=row.id,
                                   raw="{}"))
        db.commit()


def _issue(figures: dict, number: int) -> dict:
    return next(c for c in figures["campaigns"] if c["issue_number"] == number)


def test_admin_figures_agree_between_two_processes_after_writes(two_servers, database_url):
    from datetime import UTC, datetime

    from mailer.store.db import get_engine, session
    from mailer.store.subscribers import get_by_email
    from tests.console_seed import build_console_data

    a, b = two_servers
    build_console_data(get_engine(database_url), now=datetime(2026, 11, 27, 12, tzinfo=UTC))
    before = _figures(a)
    assert _figures(b) == before  # both caches now hold these figures
    _late_bounce(database_url, 643)  # what the web hook or `events poll` stores
    with session(get_engine(database_url)) as db:
        reader_id = get_by_email(db, "o2@old.example").id
    _unsubscribe_through(a, reader_id)
    after_a, after_b = _figures(a), _figures(b)
    assert _issue(after_a, 643)["bounced"] == _issue(before, 643)["bounced"] + 1
    assert after_a["subscribers"] != before["subscribers"]
    assert after_b == after_a


def test_serve_with_two_workers_limits_as_one(mailer_env, tmp_path, monkeypatch):
    """The deploy unit's own command: `mailer serve --workers 2`, one port, two processes; the
    11th failed log-in from a network is refused whichever worker took the connection."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from mailer.store.db import get_engine
    from tests.plugins import web_peer
    from tests.plugins.processes import free_port, stop_process

    get_engine(mailer_env["MAILER_DATABASE_URL"])
    monkeypatch.setattr(web_peer, "STARTUP_TIMEOUT", 90.0)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **mailer_env, "MAILER_BASE_URL": url, "MAILER_ADMIN_USER": USER,
           "MAILER_ADMIN_PASSWORD": PASSWORD, "MAILER_TRUSTED_PROXIES": "127.0.0.1/32"}
    log_path = tmp_path / "serve-workers.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("mailer")), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "2"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        web_peer._wait_until_healthy(process, url, log_path)
        # a new connection per request, so the kernel hands them to either worker
        assert [_log_in(url, "wrong guess", "203.0.113.8") for _ in range(10)] == [401] * 10
        assert _log_in(url, PASSWORD, "203.0.113.8") == 429
        assert _log_in(url, PASSWORD, "198.51.100.10") == 200
    finally:
        stop_process(process)
    assert "Started parent process" in log_path.read_text()  # it did run two workers


def test_concurrent_hits_never_pass_the_limit_nor_lose_a_count(database_url):
    """Eight threads with their own connections hit one key at once, as two processes' request
    threads would: exactly the limit is let in, and every recorded hit is counted."""
    from concurrent.futures import ThreadPoolExecutor

    from mailer.store.db import get_engine
    from mailer.store.limits import row_count
    from mailer.web.limiter import DatabaseWindowLimiter

    engine = get_engine(database_url)
    limiter = DatabaseWindowLimiter("test", 50, 60.0, engine=lambda: engine, secret=TEST_SECRET)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: limiter.hit("192.0.2.1"), range(80)))
        list(pool.map(lambda _: limiter.record("192.0.2.2"), range(80)))
    assert sum(answer is None for answer in answers) == 50
    assert all(answer > 0 for answer in answers if answer is not None)
    assert limiter.count("192.0.2.1") == 50 and limiter.count("192.0.2.2") == 80
    assert row_count(engine) <= 2 * 61  # one row per key and second at most


def test_the_table_keeps_no_address_and_forgets_old_windows(database_url):
    from sqlalchemy import text

    from mailer.store.db import get_engine
    from mailer.web.limiter import DatabaseWindowLimiter

    engine = get_engine(database_url)
    now = [1_800_000_000.0]
    limiter = DatabaseWindowLimiter("login-failed", 10, 60.0, engine=lambda: engine,
                                    secret=TEST_SECRET, clock=lambda: now[0])
    for n in range(20):
        limiter.record(f"203.0.113.{n}")
        now[0] += 1.0
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT scope, key_hash FROM rate_limit_hit")).all()
    assert len(stored) == 20 and not any("203.0.113" in key for _, key in stored)
    now[0] += 61.0 + 60.0  # past the window, and past the once-a-window pruning
    limiter.record("198.51.100.1")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM rate_limit_hit")).scalar() == 1
    assert limiter.count("203.0.113.0") == 0
