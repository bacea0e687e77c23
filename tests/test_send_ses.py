"""`mailer send` through the SES transport against real local SES v2 endpoint processes:
moto_server (messages read back whole) and fake_ses (throttling, 5xx, latency, pauses)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select, update

from mailer.domain import CampaignStatus, DeliveryStatus, SubscriberStatus
from mailer.store.models import Campaign, Subscriber
from mailer.tokens import read_unsubscribe_token
from tests.fakes import add_readers
from tests.send_runs import (ledger_rows, readers, run_send, start_send, subscriber_ids,
                              wait_for_accepted)


pytestmark = [pytest.mark.slow, pytest.mark.peer]


def test_messages_read_back_from_moto_carry_per_reader_links_and_list_headers(
        mailer_env, engine, moto_ses):
    moto_ses.verify_identity("newsletter@example.org")
    add_readers(engine, "ada@example.org", "brendan@example.org", "carol@example.org")
    env = {**os.environ, **mailer_env, **moto_ses.env}

    result = run_send(env)
    assert result.returncode == 0, result.stderr
    ids = subscriber_ids(engine)
    rows = ledger_rows(engine)
    messages = moto_ses.sent_mime()
    assert sorted(m["To"] for m in messages) == sorted(ids)
    links = set()
    for message in messages:
        to = str(message["To"])
        header = str(message["List-Unsubscribe"])
        url = header.split(",")[0].strip().strip("<>")
        token = url.rsplit("/unsubscribe/", 1)[1]
        assert read_unsubscribe_token(mailer_env["MAILER_SECRET_KEY"], token) == ids[to]
        links.add(url)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "newsletter.this-week-in-rust.example.org" in message["List-Id"]
        assert message["Feedback-ID"].endswith(":644:newsletter:twir")
        assert message["X-Mailer-Delivery"] == str(rows[to].id)
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert url in text and url.replace("&", "&amp;") in html
        assert rows[to].status == DeliveryStatus.SENT and rows[to].provider_message_id
    assert len(links) == 3

    again = run_send(env)
    assert again.returncode == 0 and "already sent" in again.stdout
    assert len(moto_ses.sent_messages()) == 3


def test_throttling_and_5xx_from_the_endpoint_still_give_everyone_one_copy(
        mailer_env, engine, fake_ses):
    # The account claims 1000/s but the endpoint allows 40/s and fails 10 % of requests; the
    # seed fixes which try of which message fails, so thread timing cannot change the outcome.
    fake_ses.control(rate=40, max_send_rate=1000, error_rate=0.1, latency=0.02, seed=7)
    add_readers(engine, *readers(150))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    result = run_send(env, "--rate", "120", "--concurrency", "8")

    assert result.returncode == 0, result.stderr
    stats = fake_ses.stats()
    assert stats["throttled"] > 0 and stats["errors"] > 0  # the faults really happened
    assert stats["per_recipient"] == {address: 1 for address in readers(150)}
    assert "campaign 1 finished" in result.stdout


def test_a_pause_mid_send_stops_everything_and_a_later_run_resumes(mailer_env, engine, fake_ses):
    fake_ses.control(latency=0.02, max_send_rate=50)
    add_readers(engine, *readers(120))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    process = start_send(env, "--concurrency", "4")
    wait_for_accepted(fake_ses, 20, process)
    fake_ses.control(paused=True)
    out, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Traceback" not in err and "resume" in err
    with engine.connect() as connection:
        status, note = connection.execute(
            select(Campaign.__table__.c.status, Campaign.__table__.c.note)).one()
    assert status == CampaignStatus.STOPPED and "paus" in note.lower()
    sent_before = fake_ses.stats()["accepted"]
    assert sent_before < 120

    fake_ses.control(paused=False)
    resumed = run_send(env)
    assert resumed.returncode == 0, resumed.stderr
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers(120)}


def test_the_daily_quota_stops_the_send_and_tomorrow_it_resumes(mailer_env, engine, fake_ses):
    fake_ses.control(daily_quota=30, max_send_rate=100)
    add_readers(engine, *readers(50))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    first = run_send(env)
    assert first.returncode != 0
    assert "quota" in first.stderr and "Traceback" not in first.stderr
    assert fake_ses.stats()["accepted"] == 30

    fake_ses.control(daily_quota=-1)  # a day later
    second = run_send(env)
    assert second.returncode == 0, second.stderr
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers(50)}


def test_readers_who_unsubscribe_during_the_send_are_skipped(mailer_env, engine, fake_ses):
    fake_ses.control(latency=0.02, max_send_rate=20)
    add_readers(engine, *readers(80))
    env = {**os.environ, **mailer_env, **fake_ses.env}
    leaving = readers(80)[-5:]

    process = start_send(env, "--concurrency", "2")
    wait_for_accepted(fake_ses, 10, process)
    with engine.begin() as connection:
        connection.execute(update(Subscriber.__table__)
                           .where(Subscriber.__table__.c.email.in_(leaving))
                           .values(status=SubscriberStatus.UNSUBSCRIBED.value))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err

    copies = fake_ses.stats()["per_recipient"]
    assert not set(leaving) & set(copies)
    assert copies == {address: 1 for address in readers(75)}
    rows = ledger_rows(engine)
    assert all(rows[address].status == DeliveryStatus.SKIPPED for address in leaving)


def test_an_ses_outage_stops_the_send_with_nobody_failed_and_a_rerun_sends_everyone_once(
        mailer_env, engine, fake_ses):
    fake_ses.control(latency=0.02, max_send_rate=50)
    add_readers(engine, *readers(200))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    process = start_send(env, "--concurrency", "8")
    wait_for_accepted(fake_ses, 30, process)
    fake_ses.control(errors=1_000_000)  # from now on every SendEmail answers 500
    try:
        out, err = process.communicate(timeout=90)
    finally:
        process.kill()

    assert process.returncode == 1, err
    assert "Traceback" not in err
    statuses = [row.status for row in ledger_rows(engine).values()]
    queued = statuses.count(DeliveryStatus.QUEUED)
    assert statuses.count(DeliveryStatus.SENT) + queued == 200  # nobody failed, nothing unknown
    assert "SES kept answering with temporary errors" in err
    assert f"stopped with {queued} readers still queued; run the same command to resume" in err

    fake_ses.control(errors=0)  # the outage is over
    resumed = run_send(env)
    assert resumed.returncode == 0, resumed.stderr
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers(200)}
    assert "campaign 1 finished" in resumed.stdout


def test_messages_ses_never_takes_fail_alone_and_the_campaign_finishes(
        mailer_env, engine, fake_ses):
    # One in the middle (others go out while it is retried) and the very last one (alone).
    poisoned = {"reader0040@example.org", "reader0119@example.org"}
    fake_ses.control(latency=0.01, max_send_rate=100, fail=sorted(poisoned))
    add_readers(engine, *readers(120))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    first = run_send(env, "--concurrency", "8")
    # Nothing is tried after the last one first fails: held one run, as in an outage.
    assert first.returncode == 1 and "SES kept answering with temporary errors" in first.stderr
    assert ledger_rows(engine)["reader0119@example.org"].status == DeliveryStatus.QUEUED
    result = run_send(env)  # the rerun tries it again, alone, and fails it

    assert result.returncode == 1, result.stderr  # a reader failed
    assert "Traceback" not in result.stderr and "campaign 1 finished" in result.stdout
    rows = ledger_rows(engine)
    assert {a for a, row in rows.items() if row.status == DeliveryStatus.FAILED} == poisoned
    assert all("gave up after 5 attempts" in rows[address].error for address in poisoned)
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers(120)
                                                 if address not in poisoned}
