"""`mailer events replay` and `mailer events poll` (against moto_server's SQS), as a user runs them."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from mailer.store.db import session
from mailer.store.models import Delivery
from tests.event_support import about, envelope, event_count, queued, run, statuses, twin


def test_replay_applies_good_lines_and_reports_bad_ones(tmp_path, mailer_env, engine, readers):
    bounce = about(twin("event-bounce"), "bounce@example.net", "m-bounce")
    complaint = about(twin("notification-complaint-with-feedback-report"),
                      "complain@example.net", "m-complain")
    delivery = about(twin("notification-delivery"), "deliver@example.net", "m-deliver")
    lines = [
        json.dumps(bounce).encode(),                           # 1 bare
        json.dumps(envelope(complaint, "sns-1")).encode(),     # 2 enveloped
        b"",                                                   # 3 blank: skipped quietly
        b'{"eventType": "Bounce", "mail": ',                  # 4 cut off
        json.dumps({"eventType": "Teleport", "mail": {}}).encode(),  # 5 new type, but no time
        b"[1, 2, 3]",                                          # 6 not an object
        b"\xff\xfe broken",                                    # 7 not UTF-8
        json.dumps(delivery).encode(),                         # 8 bare, after the bad ones
        json.dumps(bounce).encode(),                           # 9 the same as line 1
    ]
    saved = tmp_path / "events.jsonl"
    saved.write_bytes(b"\n".join(lines) + b"\n")

    result = run(mailer_env, "events", "replay", str(saved))
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 1, out + err
    for number in (4, 5, 6, 7):
        assert f"line {number}:" in err
    assert "line 3" not in err and "line 9" not in err
    assert "timestamp" in err and "Traceback" not in err
    assert "bounce" in out and "complaint" in out and "delivery" in out
    assert statuses(engine) == {"bounce@example.net": "bounced",
                                "complain@example.net": "complained",
                                "deliver@example.net": "active"}
    assert event_count(engine) == 3

    again = run(mailer_env, "events", "replay", "--json", str(saved))
    summary = json.loads(again.stdout)
    assert summary["events"] == {} and summary["duplicates"] + summary["replayed_messages"] == 4
    assert len(summary["problems"]) == 4
    assert event_count(engine) == 3


def test_replay_reads_stdin_and_a_missing_file_is_one_error_line(mailer_env, engine, readers):
    line = json.dumps(about(twin("event-delivery"), "deliver@example.net", "m-deliver"))
    result = run(mailer_env, "events", "replay", "--json", "-", stdin=line.encode() + b"\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events"] == {"delivery": 1}

    missing = run(mailer_env, "events", "replay", "/nonexistent/events.jsonl")
    err = missing.stderr.decode()
    assert missing.returncode != 0
    assert "error:" in err and "cannot read" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.peer
def test_poll_applies_sns_wrapped_and_raw_messages_and_deletes_them(mailer_env, engine, readers,
                                                                    moto_ses, queue):
    sqs, url = queue
    bounce = about(twin("event-bounce"), "bounce@example.net", "m-bounce")
    delivery = about(twin("event-delivery"), "deliver@example.net", "m-deliver")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(envelope(bounce, "sns-q-1")))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(delivery))  # raw delivery
    sqs.send_message(QueueUrl=url, MessageBody="this is not a notification")
    env = {**mailer_env, **moto_ses.env}

    result = run(env, "events", "poll", "--queue-url", url, "--wait", "1", "--max", "3",
                 "--endpoint-url", moto_ses.endpoint_url, "--json")
    assert result.returncode == 1, result.stderr  # one message was bad
    summary = json.loads(result.stdout)
    assert summary["events"] == {"bounce": 1, "delivery": 1}
    assert len(summary["problems"]) == 1 and "not JSON" in summary["problems"][0]
    assert statuses(engine)["bounce@example.net"] == "bounced"
    with session(engine) as db:
        row = db.exec(select(Delivery).where(Delivery.provider_message_id == "m-deliver")).one()
        assert row.delivered_at is not None
    assert queued(sqs, url) == 1  # the bad one stays for the queue's redrive policy


@pytest.mark.peer
def test_poll_once_on_an_empty_queue_and_a_missing_queue(mailer_env, moto_ses, queue):
    sqs, url = queue
    env = {**mailer_env, **moto_ses.env}
    empty = run(env, "events", "poll", "--queue-url", url, "--once", "--wait", "0",
                "--endpoint-url", moto_ses.endpoint_url, "--json")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["handled"] == 0

    missing = run(env, "events", "poll", "--queue-url", url + "-nope", "--once", "--wait", "0",
                  "--endpoint-url", moto_ses.endpoint_url)
    err = missing.stderr.decode()
    assert missing.returncode != 0 and "error:" in err and "Traceback" not in err
