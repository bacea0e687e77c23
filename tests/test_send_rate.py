"""Issue 11 §1: through SES the rate is the account's MaxSendRate unless the operator lowers it,
and the number of messages in flight follows the rate and the latency actually observed."""

from __future__ import annotations

import os
import threading
import time

import pytest

from mailer.dispatch import (
    MAX_SENDERS, Dispatcher, MessageComposer, SendOptions, choose_concurrency, choose_rate,
)
from mailer.domain import SendQuota
from mailer.ratelimit import ConcurrencyGate
from tests.dispatch_support import FakeRendered, fake_personalise
from tests.fakes import add_reader_rows
from tests.ledger_support import start


def quota(rate: float | None) -> SendQuota:
    return SendQuota(max_send_rate=rate, max_24h=1e6, sent_last_24h=0)


@pytest.mark.parametrize(("account", "requested", "configured", "expected"), [
    (200, None, None, (200, "the account's MaxSendRate")),
    (200, 50, None, (50, "--rate; the account allows 200")),
    (200, None, 30, (30, "MAILER_SEND_RATE; the account allows 200")),
    (200, 500, None, (200, "the account's MaxSendRate")),  # a flag never raises the rate
    (200, 20, 100, (20, "--rate; the account allows 200")),  # the flag beats the setting
    (None, None, None, (14, "the default MAILER_SEND_RATE")),  # SMTP, outbox, moto
    (None, 40, None, (40, "--rate")),
])
def test_the_rate_is_the_accounts_unless_the_operator_lowers_it(
        account, requested, configured, expected):
    chosen = choose_rate(None if account is None else quota(account), requested=requested,
                         configured=configured, default=14)
    assert chosen == expected


def test_concurrency_is_sized_unless_given():
    assert choose_concurrency(None, None) == (MAX_SENDERS, True)
    assert choose_concurrency(8, None) == (8, False)
    assert choose_concurrency(None, 24) == (24, False)


def test_the_gate_follows_littles_law_as_latency_changes():
    gate = ConcurrencyGate(64)
    gate.size_for(200)
    for _ in range(300):
        gate.observe(0.05)
    assert gate.limit == 17  # 200/s x 50 ms = 10 in flight, x1.5 headroom, +2
    for _ in range(300):
        gate.observe(0.15)
    assert gate.limit == 47
    for _ in range(300):
        gate.observe(0.02)
    assert gate.limit == 8
    gate.size_for(2000)
    assert gate.limit == 62
    gate.size_for(1e6)
    assert gate.limit == 64  # never more than the threads there are
    fixed = ConcurrencyGate(6, fixed=True)
    fixed.size_for(1000)
    fixed.observe(1.0)
    assert fixed.limit == 6


def test_the_gate_never_lets_more_than_its_limit_through():
    gate = ConcurrencyGate(10, fixed=True)
    stop = threading.Event()
    busy, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        assert gate.acquire(stop)
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.01)
        with lock:
            busy[0] -= 1
        gate.release()

    gate._limit = 3
    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 3


class SlowTransport:
    """Answers after ``latency`` seconds; records how many calls were in flight at once."""

    name = "slow"

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.in_flight = self.peak = 0
        self._lock = threading.Lock()

    def preflight(self):
        return None

    def send(self, message) -> str:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.latency)
        with self._lock:
            self.in_flight -= 1
        return "id"

    def close(self) -> None:
        pass


def test_the_dispatcher_grows_its_in_flight_count_when_the_provider_slows(engine, settings):
    add_reader_rows(engine, 300)
    campaign = start(engine).campaign
    transport = SlowTransport(0.15)
    composer = MessageComposer(FakeRendered(), settings, campaign_id=campaign.id,
                               issue_number=644, personalise=fake_personalise)
    dispatcher = Dispatcher(engine, transport, composer, campaign.id,
                            SendOptions(rate=100, concurrency=MAX_SENDERS, size_concurrency=True))
    report = dispatcher.run()
    assert report.sent == 300
    # 100/s x 150 ms = 15 in flight: more than the old fixed default of 16 threads would give
    # with headroom, far fewer than the 64 threads there are.
    assert dispatcher.gate.latency > 0.14
    assert 15 <= dispatcher.gate.limit <= 30
    assert transport.peak <= dispatcher.gate.limit + 1


@pytest.mark.slow
@pytest.mark.peer
def test_mailer_send_uses_the_accounts_rate_and_a_setting_only_lowers_it(
        mailer_env, engine, fake_ses):
    from tests.fakes import add_readers
    from tests.send_runs import readers, run_send

    fake_ses.control(max_send_rate=200, rate=200)
    add_readers(engine, *readers(20))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    default = run_send(env, "--dry-run")
    assert "transport: ses, 200 messages/s (the account's MaxSendRate)" in default.stdout
    assert "in flight: sized from the rate and the observed latency" in default.stdout
    lowered = run_send({**env, "MAILER_SEND_RATE": "50"}, "--dry-run")
    assert "50 messages/s (MAILER_SEND_RATE; the account allows 200)" in lowered.stdout
    not_raised = run_send(env, "--dry-run", "--rate", "900", "--concurrency", "8")
    assert "200 messages/s (the account's MaxSendRate)" in not_raised.stdout
    assert "in flight: 8 (fixed)" in not_raised.stdout

    sent = run_send(env)
    assert sent.returncode == 0, sent.stderr
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers(20)}
