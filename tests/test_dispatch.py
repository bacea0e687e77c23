"""The dispatcher with an in-process transport double, on a real SQLite ledger.

End-to-end proof against real SES endpoints lives in test_send_ses.py and test_send_crash.py;
these cases pin down each rule of the send loop one at a time.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from mailer.dispatch import Dispatcher, MessageComposer, SendOptions, effective_rate
from mailer.domain import CampaignStatus, DeliveryStatus, SendQuota, SubscriberStatus, utcnow
from mailer.errors import AccountError, QuotaExhausted, Rejected, TemporaryFailure, Throttled
from mailer.ratelimit import RateLimiter, backoff_delay
from mailer.store import ledger
from mailer.store.models import SendWorker
from mailer.tokens import read_unsubscribe_token
from tests.fakes import add_reader_rows
from tests.ledger_support import rows, set_status, start
from tests.fakes import FakeClock, RecordingTransport
from tests.dispatch_support import FakeRendered, fake_personalise, run, statuses


# -- every reader once, with the headers that let them leave and SES map events back -----------

def test_every_reader_gets_one_personalised_copy_with_list_headers(engine, settings):
    ids = add_reader_rows(engine, 30)
    campaign = start(engine).campaign
    transport = RecordingTransport()

    report = run(engine, settings, transport, campaign)

    assert report.finished and report.sent == 30 and report.ok
    assert transport.copies() == {f"reader{n}@example.org": 1 for n in range(30)}
    ledger_rows = {row.email: row for row in rows(engine, campaign.id)}
    by_address = dict(zip((f"reader{n}@example.org" for n in range(30)), ids, strict=False))
    links = set()
    for message in transport.accepted:
        row = ledger_rows[message.to]
        assert row.status == DeliveryStatus.SENT and row.provider_message_id.startswith("provider-")
        url = message.headers["List-Unsubscribe"].strip("<>")
        assert url.startswith(settings.base_url + "/unsubscribe/")
        token = url.rsplit("/", 1)[1]
        assert read_unsubscribe_token(settings.secret_key, token) == by_address[message.to]
        assert url in message.html and url in message.text
        links.add(url)
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.headers["List-Id"] == settings.list_id
        assert message.headers["Feedback-ID"] == f"{campaign.id}:644:newsletter:twir"
        assert message.headers["X-Mailer-Delivery"] == str(row.id)
        assert message.tags == {"campaign": str(campaign.id), "delivery": str(row.id)}
        assert message.sender == settings.from_
    assert len(links) == 30
    assert ledger.get_campaign(engine, campaign.id).status == CampaignStatus.FINISHED


def test_mailto_unsubscribe_is_added_when_configured(engine, monkeypatch, mailer_env):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_UNSUBSCRIBE_MAILTO", "leave@example.org")
    get_settings.cache_clear()
    add_reader_rows(engine, 1)
    campaign = start(engine).campaign
    transport = RecordingTransport()
    run(engine, get_settings(), transport, campaign)
    header = transport.accepted[0].headers["List-Unsubscribe"]
    assert header.startswith("<http") and header.endswith(", <mailto:leave@example.org?subject=unsubscribe>")


def test_fast_personalisation_gives_exactly_what_render_personalise_gives(engine, settings):
    from mailer.render import MANAGE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, personalise
    from mailer.render.pipeline import RenderedIssue

    html = (f"<a href=\"{UNSUBSCRIBE_PLACEHOLDER}\">leave</a> <p>x &amp; y</p>"
            f"<a href=\"{MANAGE_PLACEHOLDER}\">manage</a> {UNSUBSCRIBE_PLACEHOLDER}")
    text = f"Leave: {UNSUBSCRIBE_PLACEHOLDER}\nManage: {MANAGE_PLACEHOLDER}\n"
    rendered = RenderedIssue(issue=None, subject="s", preheader="", mjml="", html=html,
                             text=text, warnings=())
    composer = MessageComposer(rendered, settings, campaign_id=1, issue_number=644)
    delivery = ledger.ClaimedDelivery(id=5, subscriber_id=42, email="a@example.org", attempts=0)
    message = composer.compose(delivery)
    url, manage = composer.unsubscribe_url(42), composer.manage_url(42)
    assert (message.html, message.text) == personalise(rendered, unsubscribe_url=url,
                                                       manage_url=manage)
    assert message.html.count(url) == 2 and message.text.count(url) == 1
    assert message.html.count(manage) == 1 and message.text.count(manage) == 1
    assert "/manage/" in manage and manage != url


def test_sends_overlap_up_to_the_concurrency(engine, settings):
    add_reader_rows(engine, 40)
    campaign = start(engine).campaign
    transport = RecordingTransport(latency=0.03)
    run(engine, settings, transport, campaign, concurrency=8)
    assert transport.max_in_flight == 8
    assert len(transport.accepted) == 40


# -- provider errors ---------------------------------------------------------------------------

def test_throttling_slows_down_and_loses_nothing(engine, settings):
    add_reader_rows(engine, 20)
    campaign = start(engine).campaign
    script = {f"reader{n}@example.org": [Throttled("Maximum sending rate exceeded.")] * 2
              for n in range(0, 20, 3)}
    transport = RecordingTransport(script=script)
    composer = MessageComposer(FakeRendered(), settings, campaign_id=campaign.id,
                               issue_number=644, personalise=fake_personalise)
    dispatcher = Dispatcher(engine, transport, composer, campaign.id,
                            SendOptions(rate=500, concurrency=4, backoff_base=0.001,
                                        backoff_cap=0.01))
    report = dispatcher.run()

    assert report.finished and report.failed == 0 and report.throttled == 14
    assert transport.copies() == {f"reader{n}@example.org": 1 for n in range(20)}
    assert dispatcher.limiter.rate < 500


def test_temporary_failures_are_retried_then_the_row_fails_with_the_reason(engine, settings):
    add_reader_rows(engine, 3)
    campaign = start(engine).campaign
    script = {"reader0@example.org": [TemporaryFailure("HTTP 503")] * 2,  # recovers
              "reader1@example.org": [TemporaryFailure("HTTP 500 boom")] * 10}  # never does
    transport = RecordingTransport(script=script)

    report = run(engine, settings, transport, campaign, max_attempts=3)

    assert transport.copies() == {"reader0@example.org": 1, "reader2@example.org": 1}
    assert report.failed == 1 and not report.ok and report.finished
    failed = [row for row in rows(engine, campaign.id) if row.status == DeliveryStatus.FAILED]
    assert [row.email for row in failed] == ["reader1@example.org"]
    assert "3 attempts" in failed[0].error and "HTTP 500 boom" in failed[0].error
    assert failed[0].attempts == 3


def test_a_rejected_recipient_fails_and_the_send_goes_on(engine, settings):
    add_reader_rows(engine, 4)
    campaign = start(engine).campaign
    transport = RecordingTransport(script={"reader1@example.org": [Rejected("Email address is not verified")]})
    report = run(engine, settings, transport, campaign)
    assert report.sent == 3 and report.failed == 1 and report.finished
    assert transport.attempts == 4  # a permanent rejection is not retried


def test_an_account_error_stops_everything_and_a_resume_sends_the_rest_once(engine, settings):
    add_reader_rows(engine, 30)
    campaign = start(engine).campaign
    paused = RecordingTransport(script={"reader10@example.org": [AccountError("sending paused")]})

    first = run(engine, settings, paused, campaign, concurrency=1, batch_size=5)

    assert first.account_error and not first.finished and "sending paused" in first.stop_reason
    stopped = ledger.get_campaign(engine, campaign.id)
    assert stopped.status == CampaignStatus.STOPPED and "sending paused" in stopped.note
    assert len(paused.accepted) == 10
    assert statuses(engine, campaign.id) == {DeliveryStatus.SENT: 10, DeliveryStatus.QUEUED: 20}
    assert all(row.claimed_by is None for row in rows(engine, campaign.id)
               if row.status == DeliveryStatus.QUEUED)

    ledger.resume_campaign(engine, campaign.id)
    healthy = RecordingTransport()
    second = run(engine, settings, healthy, campaign)
    assert second.finished and second.sent == 20
    everyone = paused.copies() | healthy.copies()
    assert sum(paused.copies().values()) + sum(healthy.copies().values()) == 30
    assert everyone == {f"reader{n}@example.org": 1 for n in range(30)}


def test_the_24_hour_quota_stops_the_send_cleanly(engine, settings):
    add_reader_rows(engine, 12)
    campaign = start(engine).campaign
    transport = RecordingTransport()
    quota = SendQuota(max_send_rate=100, max_24h=1000, sent_last_24h=995)

    report = run(engine, settings, transport, campaign, quota=quota, concurrency=2)

    assert len(transport.accepted) == 5
    assert report.account_error and "quota" in report.stop_reason
    assert statuses(engine, campaign.id) == {DeliveryStatus.SENT: 5, DeliveryStatus.QUEUED: 7}


def test_quota_exhausted_from_the_provider_stops_too(engine, settings):
    add_reader_rows(engine, 6)
    campaign = start(engine).campaign
    transport = RecordingTransport(
        script={"reader2@example.org": [QuotaExhausted("Daily message quota exceeded")]})
    report = run(engine, settings, transport, campaign, concurrency=1, batch_size=2)
    assert report.account_error and len(transport.accepted) == 2
    assert ledger.get_campaign(engine, campaign.id).status == CampaignStatus.STOPPED


# -- readers who leave mid-send, canaries and signals ------------------------------------------

def test_an_unsubscribe_during_the_send_is_honoured(engine, settings):
    ids = add_reader_rows(engine, 10)

    def first_message_unsubscribes_the_last_reader(message) -> None:
        if message.to == "reader0@example.org":
            set_status(engine, ids[-1], SubscriberStatus.UNSUBSCRIBED)
            set_status(engine, ids[-2], SubscriberStatus.COMPLAINED)

    campaign = start(engine).campaign
    transport = RecordingTransport(on_send=first_message_unsubscribes_the_last_reader)
    report = run(engine, settings, transport, campaign, concurrency=1, batch_size=2)

    assert report.skipped == 2 and report.sent == 8 and report.finished
    assert "reader9@example.org" not in transport.copies()
    assert "reader8@example.org" not in transport.copies()


def test_limit_says_how_many_of_the_campaign_went_out_with_thousands_marked(engine, settings):
    add_reader_rows(engine, 1200)
    campaign = start(engine).campaign
    report = run(engine, settings, RecordingTransport(), campaign, limit=1000)
    assert report.stop_reason == "sent 1,000 of 1,200; run the same command to continue"


def test_a_canary_sends_the_limit_and_leaves_the_campaign_resumable(engine, settings):
    add_reader_rows(engine, 10)
    campaign = start(engine).campaign
    transport = RecordingTransport()
    report = run(engine, settings, transport, campaign, limit=3, batch_size=2)

    assert report.sent == 3 and report.limit_reached and not report.finished
    assert report.stop_reason == "sent 3 of 10; run the same command to continue"
    assert ledger.get_campaign(engine, campaign.id).status == CampaignStatus.STOPPED
    assert statuses(engine, campaign.id) == {DeliveryStatus.SENT: 3, DeliveryStatus.QUEUED: 7}


def test_stop_finishes_the_messages_in_flight_and_leaves_nothing_sending(engine, settings):
    add_reader_rows(engine, 200)
    campaign = start(engine).campaign
    transport = RecordingTransport(latency=0.02)
    composer = MessageComposer(FakeRendered(), settings, campaign_id=campaign.id,
                               issue_number=644, personalise=fake_personalise)
    dispatcher = Dispatcher(engine, transport, composer, campaign.id,
                            SendOptions(rate=10_000, concurrency=4))

    def stop_after_some() -> None:
        while len(transport.accepted) < 20:
            time.sleep(0.005)
        dispatcher.stop("interrupted by SIGTERM")

    stopper = threading.Thread(target=stop_after_some)
    stopper.start()
    report = dispatcher.run()
    stopper.join()

    counts = statuses(engine, campaign.id)
    assert DeliveryStatus.SENDING not in counts and DeliveryStatus.UNKNOWN not in counts
    assert counts[DeliveryStatus.SENT] == len(transport.accepted) == report.sent
    assert 20 <= report.sent < 200
    assert ledger.get_campaign(engine, campaign.id).status == CampaignStatus.STOPPED
    assert all(row.claimed_by is None for row in rows(engine, campaign.id)
               if row.status == DeliveryStatus.QUEUED)


# -- rate --------------------------------------------------------------------------------------

def test_rate_limiter_hands_out_slots_at_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_rate_limiter_halves_on_throttle_and_recovers_gradually():
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, increase_fraction=0.1)
    limiter.throttled()
    assert limiter.rate == 50
    limiter.throttled()  # the same burst of in-flight messages: not another halving
    assert limiter.rate == 50
    clock.now += 0.5
    limiter.throttled()
    assert limiter.rate == 25
    clock.now += 2.0
    limiter.reserve()
    assert limiter.rate == pytest.approx(45)  # +10 % of the ceiling per second
    clock.now += 60
    limiter.reserve()
    assert limiter.rate == 100  # never above the ceiling


def test_rate_limiter_share_shrinks_with_more_workers():
    limiter = RateLimiter(90, clock=FakeClock())
    limiter.set_ceiling(30)
    assert limiter.rate == 30 and limiter.ceiling == 30


def test_idle_time_earns_only_a_small_burst():
    clock = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=clock)
    clock.now += 100  # a long idle period
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_backoff_grows_and_is_capped():
    assert backoff_delay(1, base=1, cap=8, rand=lambda: 0.0) == 0.5
    assert backoff_delay(3, base=1, cap=8, rand=lambda: 1.0) == 4
    assert backoff_delay(10, base=1, cap=8, rand=lambda: 1.0) == 8


def test_effective_rate_is_the_lower_of_setting_and_account():
    assert effective_rate(14, SendQuota(max_send_rate=1, max_24h=200)) == 1
    assert effective_rate(14, SendQuota(max_send_rate=500, max_24h=-1)) == 14
    assert effective_rate(14, None) == 14


def test_live_peers_share_the_rate_and_a_dead_peers_rows_are_taken_over(engine, settings):
    add_reader_rows(engine, 6)
    campaign = start(engine).campaign
    ledger.register_worker(engine, "peer-a", campaign.id, 50)
    ledger.register_worker(engine, "peer-b", campaign.id, 50)
    composer = MessageComposer(FakeRendered(), settings, campaign_id=campaign.id,
                               issue_number=644, personalise=fake_personalise)
    dispatcher = Dispatcher(engine, RecordingTransport(), composer, campaign.id,
                            SendOptions(rate=90, concurrency=2))
    ledger.register_worker(engine, dispatcher.worker_id, campaign.id, 90)

    dispatcher._beat()
    assert dispatcher.limiter.ceiling == pytest.approx(30)  # three live workers

    ledger.claim_batch(engine, campaign.id, "peer-b", 3)
    ledger.unregister_worker(engine, "peer-a")
    with engine.begin() as connection:  # peer-b stopped beating a while ago
        connection.execute(update(SendWorker.__table__)
                           .where(SendWorker.__table__.c.id == "peer-b")
                           .values(heartbeat_at=utcnow() - timedelta(minutes=10)))
    dispatcher._beat()
    assert dispatcher.limiter.ceiling == pytest.approx(90)
    assert all(row.claimed_by is None for row in rows(engine, campaign.id))
    ledger.unregister_worker(engine, dispatcher.worker_id)
