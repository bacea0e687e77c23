"""A provider outage stops the send with its readers still queued; one message the provider
never takes still fails on its own. The dispatcher with an in-process transport double on a
real SQLite ledger (the same endpoint-level proof against fake_ses is in test_send_ses.py)."""

from __future__ import annotations

import time

from mailer.domain import CampaignStatus, DeliveryStatus
from mailer.errors import TemporaryFailure
from mailer.store import ledger
from tests.fakes import RecordingTransport
from tests.dispatch_support import run, statuses
from tests.fakes import add_reader_rows
from tests.ledger_support import rows, start


class FlakyProvider(RecordingTransport):
    """Takes messages until ``fail_after`` were accepted, then answers every try with a 5xx (a
    regional outage); ``poisoned`` addresses get a 5xx on every try, outage or not."""

    def __init__(self, *, fail_after: int | None = None, poisoned=(),
                 latency: float = 0.002) -> None:
        super().__init__(latency=latency)
        self.fail_after = fail_after
        self.poisoned = set(poisoned)
        self.refused = 0

    def send(self, message) -> str:
        with self._lock:
            down = self.fail_after is not None and len(self.accepted) >= self.fail_after
            if down or message.to in self.poisoned:
                self.refused += 1
                refuse = True
            else:
                refuse = False
        if refuse:
            time.sleep(self.latency)
            raise TemporaryFailure("HTTP 500 InternalFailure")
        return super().send(message)


def failed_addresses(engine, campaign_id) -> set[str]:
    return {row.email for row in rows(engine, campaign_id) if row.status == DeliveryStatus.FAILED}


def assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, report, queued: int):
    assert report.outage and report.account_error and not report.finished
    assert report.failed == 0 and "kept answering with temporary errors" in report.stop_reason
    assert statuses(engine, campaign.id).get(DeliveryStatus.QUEUED) == queued
    assert DeliveryStatus.FAILED not in statuses(engine, campaign.id)
    assert DeliveryStatus.SENDING not in statuses(engine, campaign.id)
    assert ledger.get_campaign(engine, campaign.id).status == CampaignStatus.STOPPED


def test_an_outage_stops_the_send_with_nobody_failed_and_a_resume_sends_everyone_once(
        engine, settings):
    add_reader_rows(engine, 120)
    campaign = start(engine).campaign
    outage = FlakyProvider(fail_after=30)

    first = run(engine, settings, outage, campaign, concurrency=8, max_attempts=3)

    assert 30 <= len(outage.accepted) < 30 + 8  # the outage began with 8 in flight
    assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, first,
                                                   queued=120 - len(outage.accepted))
    assert outage.refused < 60  # not 90 readers x 3 tries
    ledger.resume_campaign(engine, campaign.id)
    healthy = RecordingTransport()
    second = run(engine, settings, healthy, campaign, concurrency=8, max_attempts=3)
    assert second.finished and second.sent == 120 - len(outage.accepted) and second.ok
    assert len(outage.accepted) + len(healthy.accepted) == 120
    assert outage.copies() | healthy.copies() == {f"reader{n}@example.org": 1 for n in range(120)}


def test_one_sender_thread_also_stops_at_an_outage_before_failing_anyone(engine, settings):
    add_reader_rows(engine, 40)
    campaign = start(engine).campaign

    report = run(engine, settings, FlakyProvider(fail_after=10), campaign, concurrency=1,
                 max_attempts=3, max_gave_up_in_a_row=3)

    assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, report, queued=30)


def test_messages_the_provider_never_takes_fail_and_the_campaign_finishes(engine, settings):
    add_reader_rows(engine, 200)
    campaign = start(engine).campaign
    poisoned = {f"reader{n}@example.org" for n in (10, 11, 12, 60, 150)}
    provider = FlakyProvider(poisoned=poisoned)

    report = run(engine, settings, provider, campaign, max_attempts=3)

    assert report.finished and not report.outage and report.failed == len(poisoned)
    assert failed_addresses(engine, campaign.id) == poisoned
    assert provider.copies() == {f"reader{n}@example.org": 1 for n in range(200)
                                 if f"reader{n}@example.org" not in poisoned}
    assert all("gave up after 3 attempts" in row.error for row in rows(engine, campaign.id)
               if row.status == DeliveryStatus.FAILED)


def test_poisoned_messages_with_nothing_ever_accepted_stay_queued_run_after_run(
        engine, settings):
    # Nothing else is sent while they are tried, in this run or any other: no run can tell
    # them from an outage, so each stops with them queued (exit 1) and none is failed.
    add_reader_rows(engine, 3)
    campaign = start(engine).campaign
    poisoned = {f"reader{n}@example.org" for n in range(3)}

    first = run(engine, settings, FlakyProvider(poisoned=poisoned), campaign, max_attempts=3)

    assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, first, queued=3)
    ledger.resume_campaign(engine, campaign.id)
    second = run(engine, settings, FlakyProvider(poisoned=poisoned), campaign, max_attempts=3)
    assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, second, queued=3)


# -- the tail of a campaign: no later message can prove SES works -------------------------------

def test_an_outage_on_the_last_two_rows_keeps_them_queued_and_a_rerun_sends_them_once(
        engine, settings):
    add_reader_rows(engine, 40)
    campaign = start(engine).campaign
    outage = FlakyProvider(fail_after=38)  # SES goes down as the last two readers are tried

    first = run(engine, settings, outage, campaign, concurrency=1, max_attempts=3)

    assert len(outage.accepted) == 38
    assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, first, queued=2)
    ledger.resume_campaign(engine, campaign.id)
    healthy = RecordingTransport()
    second = run(engine, settings, healthy, campaign, concurrency=1, max_attempts=3)
    assert second.finished and second.ok and second.sent == 2
    assert outage.copies() | healthy.copies() == {f"reader{n}@example.org": 1 for n in range(40)}


def test_an_outage_on_the_last_row_alone_also_stops_with_it_queued(engine, settings):
    add_reader_rows(engine, 20)
    campaign = start(engine).campaign

    report = run(engine, settings, FlakyProvider(fail_after=19), campaign, concurrency=1,
                 max_attempts=3)

    assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, report, queued=1)


def test_a_poisoned_last_row_among_good_ones_is_held_one_run_then_fails_alone(engine, settings):
    # No message is tried after its first failure, so the first run cannot tell it from an
    # outage; the rerun tries it again and, the campaign's other readers having been taken by
    # SES, fails it: held one run at most, never a loop.
    add_reader_rows(engine, 30)
    campaign = start(engine).campaign
    poisoned = {"reader29@example.org"}

    first = run(engine, settings, FlakyProvider(poisoned=poisoned), campaign, max_attempts=3)

    assert_stopped_by_an_outage_with_nobody_failed(engine, campaign, first, queued=1)
    ledger.resume_campaign(engine, campaign.id)
    provider = FlakyProvider(poisoned=poisoned)
    second = run(engine, settings, provider, campaign, max_attempts=3)
    assert second.finished and second.failed == 1 and not second.outage
    assert failed_addresses(engine, campaign.id) == poisoned
    assert provider.accepted == []  # nobody else was sent twice
