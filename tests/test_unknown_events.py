"""Events never lost (issue 21, section 5): an SES event type mailer does not know is stored with
its raw payload, shown on /admin/events, answered 200 (so SNS does not drop it) and counted by
`events replay` / `events poll`, and it changes no delivery or subscriber state."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from mailer.cli import app as cli
from mailer.config import get_settings
from mailer.store.db import get_engine, session
from mailer.store.models import Delivery, DeliveryEventRecord, Subscriber
from mailer.web.app import create_app
from tests.web_clients import ADMIN_ENV, PASSWORD, USER, basic_auth
from tests.event_support import about, envelope, queued, run, twin
from tests.event_support import post, ses_payload

AUTH = basic_auth(USER, PASSWORD)
KNOWN_BUT_NOT_ACTED_ON = ["event-open", "event-click", "event-subscription",
                          "event-rendering-failure", "event-reject"]


@pytest.fixture
def client(hook_settings, sns_signer, reader, monkeypatch):
    """The web hook and the console in one app, with the tests' SNS signing certificate."""
    for name, value in ADMIN_ENV.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = create_app(get_settings())
    app.state.sns_cert_fetcher = sns_signer.fetcher
    with TestClient(app) as client:
        yield client


def state(engine) -> tuple:
    """Every field of every reader and ledger row an event could change."""
    with session(engine) as db:
        readers_now = [r.model_dump(exclude={"updated_at"}, warnings=False) for r in db.exec(select(Subscriber))]
        rows = [d.model_dump(warnings=False) for d in db.exec(select(Delivery).order_by(Delivery.id))]
        return readers_now, rows


def stored(engine) -> list[DeliveryEventRecord]:
    with session(engine) as db:
        return list(db.exec(select(DeliveryEventRecord).order_by(DeliveryEventRecord.id)))


def renamed(payload: dict, field: str, name: str) -> dict:
    payload.pop("eventType", None)
    payload.pop("notificationType", None)
    return {field: name, **payload}


def test_a_signed_event_of_an_unknown_type_is_stored_shown_and_answered_200(
        client, sns_signer, hook_settings):
    engine = get_engine(hook_settings.database_url)
    before = state(engine)
    message = sns_signer.notification(ses_payload("event-future-thing"))

    reply = post(client, message)
    assert reply.status_code == 200, reply.text
    assert reply.json()["events"] == {"other": 1}
    [event] = stored(engine)
    assert event.kind == "other" and event.recipient == "reader@example.net"
    assert event.delivery_id == before[1][0]["id"]  # matched to the reader's row
    assert "FutureThing" in (event.diagnostic or "")
    assert json.loads(event.raw)["futureThing"]["verdict"] == "pondered"
    assert state(engine) == before

    again = post(client, message)  # SNS delivers at least once
    assert again.status_code == 200 and len(stored(engine)) == 1

    page = client.get("/admin/events", params={"kind": "other"}, headers=AUTH).text
    assert '<option value="other" selected>' in page
    link = re.search(r'href="(/admin/events/\d+)" aria-label="Raw payload of event \d+ \(other\)',
                     page).group(1)
    raw = client.get(link, headers=AUTH).text
    assert "&#34;eventType&#34;: &#34;FutureThing&#34;" in raw and "pondered" in raw


@pytest.mark.parametrize("field,name", [("eventType", "Teleport"),
                                        ("notificationType", "Quarantine")])
def test_either_format_with_a_new_type_name_is_kept(client, sns_signer, hook_settings, field, name):
    engine = get_engine(hook_settings.database_url)
    before = state(engine)
    payload = renamed(ses_payload("event-future-thing"), field, name)
    reply = post(client, sns_signer.notification(payload))
    assert reply.status_code == 200, reply.text
    assert [(e.kind, name in e.diagnostic) for e in stored(engine)] == [("other", True)]
    assert state(engine) == before


@pytest.mark.parametrize("sample", KNOWN_BUT_NOT_ACTED_ON)
def test_known_types_that_change_nothing_on_send_are_stored_too(client, sns_signer, hook_settings,
                                                                 sample):
    reply = post(client, sns_signer.notification(ses_payload(sample)))
    assert reply.status_code == 200, reply.text
    assert len(stored(get_engine(hook_settings.database_url))) == 1


def test_a_broken_payload_of_an_unknown_type_is_still_a_400(client, sns_signer, hook_settings):
    reply = post(client, sns_signer.notification({"eventType": "FutureThing"}))
    assert reply.status_code == 400 and "mail" in reply.json()["error"]
    assert stored(get_engine(hook_settings.database_url)) == []


def test_replay_counts_unknown_types_as_events_and_reports_only_broken_lines(
        tmp_path, mailer_env, engine, readers):
    before = state(engine)
    bare = about(twin("event-future-thing"), "bounce@example.net", "m-bounce")
    wrapped = renamed(about(twin("event-future-thing"), "deliver@example.net", "m-deliver"),
                      "notificationType", "Quarantine")
    saved = tmp_path / "events.jsonl"
    saved.write_text(json.dumps(bare) + "\n" + json.dumps(envelope(wrapped, "sns-new-1")) + "\n")

    result = CliRunner().invoke(cli, ["events", "replay", "--json", str(saved)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["events"] == {"other": 2} and summary["problems"] == []
    assert summary["unmatched"] == 0
    assert sorted(e.recipient for e in stored(engine)) == ["bounce@example.net",
                                                           "deliver@example.net"]
    assert state(engine) == before

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"eventType": "FutureThing", "mail": {}}) + "\n")
    bad = CliRunner().invoke(cli, ["events", "replay", str(broken)])
    assert bad.exit_code == 1
    assert "line 1:" in bad.stderr and "Traceback" not in bad.output
    assert len(stored(engine)) == 2


@pytest.mark.peer
def test_poll_applies_and_deletes_a_message_of_an_unknown_type(mailer_env, engine, readers,
                                                               moto_ses, queue):
    sqs, url = queue
    before = state(engine)
    payload = about(twin("event-future-thing"), "complain@example.net", "m-complain")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(envelope(payload, "sns-q-new")))

    result = run({**mailer_env, **moto_ses.env}, "events", "poll", "--queue-url", url, "--wait",
                 "1", "--max", "1", "--endpoint-url", moto_ses.endpoint_url, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events"] == {"other": 1}
    assert queued(sqs, url) == 0
    assert state(engine) == before
