"""`mailer send` through SES SendBulkEmail (issue 23 §3): up to 50 readers per call against the
fault-injecting SES peer (tests/peers/fake_ses.py), each reader still its own ledger row."""

from __future__ import annotations

import email
import email.policy
import os
import re
from pathlib import Path

import pytest

from mailer.domain import DeliveryStatus
from mailer.tokens import read_manage_token, read_unsubscribe_token
from tests import fault_matrix as matrix
from tests.fakes import add_readers
from tests.plugins.ses_peer import start_fake_ses
from tests.send_runs import ledger_rows, readers, run_send, subscriber_ids

pytestmark = [pytest.mark.slow, pytest.mark.peer]

TOKEN = re.compile(r"/(unsubscribe|manage)/([A-Za-z0-9._-]+)")


def bulk_env(mailer_env, fake_ses, **extra: str) -> dict:
    return {**os.environ, **mailer_env, **fake_ses.env, "MAILER_SES_BULK": "auto", **extra}


def parsed(message: dict) -> email.message.EmailMessage:
    return email.message_from_string(message["raw"], policy=email.policy.default)


def test_every_reader_gets_one_mail_with_their_own_links_in_few_bulk_calls(
        mailer_env, engine, fake_ses):
    fake_ses.control(keep=True, max_send_rate=1000)
    add_readers(engine, *readers(120))

    result = run_send(bulk_env(mailer_env, fake_ses))

    assert result.returncode == 0, result.stderr
    assert "campaign 1 finished" in result.stdout
    stats = fake_ses.stats()
    assert stats["per_recipient"] == {address: 1 for address in readers(120)}
    assert 3 <= stats["bulk_requests"] <= 10  # 50 a call, not 120 calls
    ids, rows = subscriber_ids(engine), ledger_rows(engine)
    secret = mailer_env["MAILER_SECRET_KEY"]
    bodies = set()
    for kept in fake_ses.messages():
        assert kept["bulk"]
        message = parsed(kept)
        to = str(message["To"])
        row = rows[to]
        assert row.status == DeliveryStatus.SENT and row.provider_message_id == kept["id"]
        url = str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
        assert read_unsubscribe_token(secret, url.rsplit("/", 1)[1]) == ids[to]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Feedback-ID"].endswith(":644:newsletter:twir")
        assert "newsletter.this-week-in-rust.example.org" in message["List-Id"]
        assert message["X-Mailer-Delivery"] == str(row.id)
        assert {"Name": "delivery", "Value": str(row.id)} in kept["tags"]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert url in text and url in html
        for part in (text, html):
            found = dict(TOKEN.findall(part))
            assert read_unsubscribe_token(secret, found["unsubscribe"]) == ids[to]
            assert read_manage_token(secret, found["manage"]) == ids[to]
        # Apart from the reader's own tokens, every copy is the same message.
        bodies.add(TOKEN.sub("/link", html) + TOKEN.sub("/link", text))
    assert len(bodies) == 1


def test_braces_in_the_issue_reach_the_reader_as_written(mailer_env, engine, fake_ses, tmp_path):
    # Rust's format strings and CSS: a template engine must not read them as variables.
    issues = tmp_path / "braces-issues"
    issues.mkdir()
    source = next(Path(fake_ses.env["MAILER_ISSUES_DIR"]).glob("*.md"))
    marker = "{{}} and {x} and {{{{y}}}}"
    (issues / source.name).write_text(source.read_text().rstrip()
                                      + f'\n\n`println!("{marker}", a);`\n')
    fake_ses.control(keep=True, max_send_rate=1000)
    add_readers(engine, *readers(3))

    result = run_send(bulk_env(mailer_env, fake_ses, MAILER_ISSUES_DIR=str(issues)))

    assert result.returncode == 0, result.stderr
    kept = fake_ses.messages()
    assert len(kept) == 3 and all(m["bulk"] for m in kept)
    for message in map(parsed, kept):
        assert marker in message.get_body(("plain",)).get_content()
        assert marker in message.get_body(("html",)).get_content()


def test_throttling_and_5xx_on_whole_calls_still_give_everyone_one_copy(
        mailer_env, engine, fake_ses):
    # The account claims 1000/s, the endpoint allows 40/s (each entry counted) and the first
    # two calls answer 500.
    fake_ses.control(rate=40, max_send_rate=1000, errors=2, latency=0.02)
    add_readers(engine, *readers(150))

    result = run_send(bulk_env(mailer_env, fake_ses), "--rate", "120", "--concurrency", "4")

    assert result.returncode == 0, result.stderr
    stats = fake_ses.stats()
    assert stats["throttled"] > 0 and stats["errors"] == 2  # the faults really happened
    assert stats["per_recipient"] == {address: 1 for address in readers(150)}
    assert "campaign 1 finished" in result.stdout


def test_a_refused_reader_in_a_batch_fails_alone(mailer_env, engine, fake_ses):
    refused = "reader0007@example.org"
    fake_ses.control(max_send_rate=1000, reject=[refused])
    add_readers(engine, *readers(60))

    result = run_send(bulk_env(mailer_env, fake_ses))

    assert result.returncode == 1  # a reader failed
    assert "Traceback" not in result.stderr and "campaign 1 finished" in result.stdout
    rows = ledger_rows(engine)
    assert rows[refused].status == DeliveryStatus.FAILED
    assert "rejected: SES MessageRejected: Address rejected" in rows[refused].error
    assert {a for a, r in rows.items() if r.status != DeliveryStatus.SENT} == {refused}
    assert fake_ses.stats()["per_recipient"] == {a: 1 for a in readers(60) if a != refused}


def test_a_reader_ses_cannot_take_right_now_is_retried_and_sent_once(
        mailer_env, engine, fake_ses):
    fake_ses.control(max_send_rate=1000, fail=["reader0003@example.org"])
    add_readers(engine, *readers(40))
    env = bulk_env(mailer_env, fake_ses)

    process = run_send(env)
    assert "Traceback" not in process.stderr
    fake_ses.control(fail=[])  # SES takes it again
    again = run_send(env)

    assert again.returncode == 0, again.stderr
    assert fake_ses.stats()["per_recipient"] == {a: 1 for a in readers(40)}


@pytest.mark.parametrize("lacking", ["absent", "refused"])
def test_without_bulk_the_send_falls_back_to_one_call_per_reader_with_a_notice(
        mailer_env, engine, fake_ses, lacking):
    fake_ses.control(max_send_rate=1000, bulk=lacking, keep=True)
    add_readers(engine, *readers(80))

    result = run_send(bulk_env(mailer_env, fake_ses))

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("notice: SendBulkEmail is not available") == 1
    stats = fake_ses.stats()
    assert stats["per_recipient"] == {address: 1 for address in readers(80)}
    assert stats["bulk_requests"] <= 16  # tried once per sender thread at most, then never
    assert all(row.status == DeliveryStatus.SENT for row in ledger_rows(engine).values())
    ids, secret = subscriber_ids(engine), mailer_env["MAILER_SECRET_KEY"]
    for kept in fake_ses.messages():  # whole messages, each with the reader's own links
        message = parsed(kept)
        for part in (message.get_body(("plain",)), message.get_body(("html",))):
            found = dict(TOKEN.findall(part.get_content()))
            assert read_unsubscribe_token(secret, found["unsubscribe"]) == ids[str(message["To"])]
            assert "{{" not in part.get_content()


def test_bulk_off_sends_one_call_per_reader(mailer_env, engine, fake_ses):
    fake_ses.control(max_send_rate=1000)
    add_readers(engine, *readers(20))

    result = run_send(bulk_env(mailer_env, fake_ses, MAILER_SES_BULK="off"))

    assert result.returncode == 0, result.stderr
    assert fake_ses.stats()["bulk_requests"] == 0
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers(20)}


def test_a_slow_account_is_not_sent_bursts_above_its_rate(mailer_env, engine, fake_ses):
    # The account allows 20/s: calls of at most half a second's worth (10), never refused.
    fake_ses.control(max_send_rate=20, rate=20)
    add_readers(engine, *readers(40))

    result = run_send(bulk_env(mailer_env, fake_ses))

    assert result.returncode == 0, result.stderr
    stats = fake_ses.stats()
    assert stats["per_recipient"] == {address: 1 for address in readers(40)}
    assert stats["bulk_requests"] >= 4 and stats["throttled"] == 0


def test_every_bulk_answer_lost_stops_the_send_after_two_calls(mailer_env, engine, fake_ses):
    fake_ses.control(max_send_rate=1000, lose_answer_rate=1.0)
    add_readers(engine, *readers(600))

    result = run_send(bulk_env(mailer_env, fake_ses), "--concurrency", "2")

    assert result.returncode == 1
    assert "answers in a row were lost" in result.stderr and "Traceback" not in result.stderr
    statuses = [row.status for row in ledger_rows(engine).values()]
    unknown = statuses.count(DeliveryStatus.UNKNOWN)
    assert unknown == len(fake_ses.stats()["lost_recipients"])  # unknown: exactly those taken
    assert 100 <= unknown <= 200  # two lost calls, and what was in flight meanwhile
    assert statuses.count(DeliveryStatus.QUEUED) >= 400  # the rest waits for a resume


# -- a lost answer and a crash mid-batch: unknown, then settled, never doubled ----------------

BULK_FAULTS = [
    matrix.Fault("the answer to a whole SendBulkEmail lost", (1,), peer={"lose_answers": 1}),
    matrix.Fault("SIGKILL after a batch was accepted, before its answer", (1, 2),
                 kill_at="accepted"),
    matrix.Fault("SIGKILL after a batch's answer, before it is recorded", (2,),
                 kill_at="answered"),
]
CELLS = [(fault, moment) for fault in BULK_FAULTS for moment in fault.moments]


@pytest.fixture(scope="module")
def peer():
    with start_fake_ses() as handle:
        yield handle


@pytest.mark.parametrize("cell", CELLS, ids=[f"{f.name.split(',')[0][:30]}-{m}" for f, m in CELLS])
def test_a_batch_lost_or_cut_off_ends_unknown_then_settles_with_nobody_doubled(
        cell, peer, tmp_path, aws_credentials):
    fault, moment = cell
    env = {**matrix.base_env(peer.env), "MAILER_SES_BULK": "auto"}
    outcome = matrix.sqlite_run(peer, env, tmp_path / "run", fault, moment)

    assert outcome.happened, outcome.outputs
    assert "Traceback" not in outcome.outputs
    assert "unknown" in outcome.outputs  # the batch's rows were left unknown, not resent
    assert (outcome.doubled, outcome.missed, outcome.unknown) == (0, 0, 0), outcome.outputs
    assert outcome.exit_codes[-1] == 0, outcome.outputs
