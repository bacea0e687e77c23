"""POST /webhooks/ses: signed SES events change the store; forgeries change nothing."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi.testclient import TestClient

from mailer.config import load_settings
from mailer.domain import SubscriberStatus
from mailer.errors import WebhookRejected
from mailer.events.sns import CertificateCache
from mailer.web.app import create_app
from mailer.web.webhook import MAX_BODY_BYTES, SnsUnreachable
from tests.plugins.sns_signing import TOPIC_ARN, serve_app
from tests.event_support import URL, post, reader_status, ses_payload, snapshot


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("version", [1, 2])
def test_a_signed_bounce_suppresses_the_reader(client, sns_signer, hook_settings, version):
    envelope = sns_signer.notification(ses_payload(), version=version,
                                       subject="Amazon SES Email Event Notification")
    reply = post(client, envelope)
    assert reply.status_code == 200, reply.text
    assert reply.json()["events"] == {"bounce": 1}
    assert reader_status(hook_settings) is SubscriberStatus.BOUNCED


def test_a_replayed_message_is_acknowledged_and_ignored(client, sns_signer, hook_settings):
    envelope = sns_signer.notification(ses_payload("event-delivery"))
    assert post(client, envelope).status_code == 200
    before = snapshot(hook_settings)
    reply = post(client, envelope)
    assert reply.status_code == 200
    assert reply.json()["status"] == "duplicate"
    assert snapshot(hook_settings) == before


def forged(kind: str, signer) -> tuple[bytes | dict, int]:
    """A message the web hook must refuse, and the status it must refuse it with."""
    payload = ses_payload()
    good = signer.notification(payload)
    if kind == "unsigned":
        return {k: v for k, v in good.items() if k != "Signature"}, 400
    if kind == "empty signature":
        return dict(good, Signature=""), 403
    if kind == "wrong signature":
        other = signer.notification(ses_payload("event-complaint"))
        return dict(good, Signature=other["Signature"]), 403
    if kind == "tampered message":
        return dict(good, Message=json.dumps(ses_payload("event-complaint"))), 403
    if kind == "v1 labelled 2":
        return dict(signer.notification(payload, version=1), SignatureVersion="2"), 403
    if kind == "v2 labelled 1":
        return dict(signer.notification(payload, version=2), SignatureVersion="1"), 403
    if kind == "http cert url":
        return signer.notification(payload, cert_url=good["SigningCertURL"].replace(
            "https:", "http:")), 403
    if kind == "look-alike host":
        return signer.notification(
            payload, cert_url="https://sns.us-east-1.amazonaws.com.evil.example/c.pem"), 403
    if kind == "userinfo trick":
        return signer.notification(
            payload, cert_url="https://sns.us-east-1.amazonaws.com@evil.example/c.pem"), 403
    if kind == "port":
        return signer.notification(
            payload, cert_url="https://sns.us-east-1.amazonaws.com:8443/c.pem"), 403
    if kind == "topic not on the list":
        return signer.notification(payload, topic_arn="arn:aws:sns:eu-west-1:666:evil"), 403
    if kind == "malformed json":
        return json.dumps(good)[:-7].encode(), 400
    if kind == "raw delivery":
        return json.dumps(payload).encode(), 400
    if kind == "huge body":
        return signer.notification(dict(payload, padding="x" * 300_000)), 413
    if kind == "type header mismatch":
        return good, 400
    if kind == "stale timestamp":  # a captured message replayed after SNS's retries ended
        return signer.sign(dict(good, Timestamp="2026-03-04T09:12:41.000Z")), 403
    raise AssertionError(kind)


FORGERIES = ["unsigned", "empty signature", "wrong signature", "tampered message",
             "v1 labelled 2", "v2 labelled 1", "http cert url", "look-alike host",
             "userinfo trick", "port", "topic not on the list", "malformed json", "raw delivery",
             "huge body", "type header mismatch", "stale timestamp"]


@pytest.mark.parametrize("kind", FORGERIES)
def test_forgeries_are_refused_and_change_nothing(client, sns_signer, hook_settings, kind):
    document, status = forged(kind, sns_signer)
    before = snapshot(hook_settings)
    message_type = "SubscriptionConfirmation" if kind == "type header mismatch" else None
    reply = post(client, document, message_type=message_type)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]
    assert snapshot(hook_settings) == before
    assert reader_status(hook_settings) is SubscriberStatus.ACTIVE


def test_raw_delivery_is_explained(client):
    reply = post(client, json.dumps(ses_payload()))
    assert reply.status_code == 400
    assert "raw message delivery" in reply.json()["error"]


def test_one_body_cap_answers_for_every_size_above_it(client, hook_settings):
    """256 KiB, however far past it a body goes: the hook's own JSON refusal, not the app's page."""
    for size in (MAX_BODY_BYTES + 1, 2 * 1024 * 1024):
        reply = post(client, b"x" * size)
        assert reply.status_code == 413
        assert reply.json() == {"error": "the body is larger than 256 KB"}
    assert reader_status(hook_settings) is SubscriberStatus.ACTIVE


@pytest.mark.parametrize("version", [1, 2])
def test_a_subscription_confirmation_is_confirmed(client, app, sns_signer, version):
    confirmation = sns_signer.confirmation(version=version)
    reply = post(client, confirmation)
    assert reply.status_code == 200
    assert app.state.confirmed == [confirmation["SubscribeURL"]]


def test_confirmations_for_other_topics_or_hosts_are_never_visited(client, app, sns_signer,
                                                                   hook_settings):
    before = snapshot(hook_settings)
    other_topic = sns_signer.confirmation(topic_arn="arn:aws:sns:eu-west-1:666:evil")
    assert post(client, other_topic).status_code == 403
    elsewhere = sns_signer.confirmation(
        subscribe_url="https://169.254.169.254/latest/meta-data/iam/")
    assert post(client, elsewhere).status_code == 403
    assert app.state.confirmed == []
    assert snapshot(hook_settings) == before


def test_an_unsubscribe_confirmation_is_logged(client, app, sns_signer, caplog):
    with caplog.at_level(logging.WARNING, logger="mailer.webhook"):
        reply = post(client, sns_signer.confirmation("UnsubscribeConfirmation"))
    assert reply.status_code == 200
    assert "unsubscribed this web hook" in caplog.text
    assert app.state.confirmed == []


def test_an_unreachable_database_asks_sns_to_retry(sns_signer, hook_settings, tmp_path):
    broken = load_settings(database_url=f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}",
                           sns_topic_arns=[TOPIC_ARN])
    app = create_app(broken)
    app.state.sns_cert_fetcher = sns_signer.fetcher
    with TestClient(app) as client:
        reply = post(client, sns_signer.notification(ses_payload()))
    assert reply.status_code == 503


def test_an_unreachable_sns_asks_sns_to_retry(app, sns_signer):
    def offline(url: str) -> bytes:
        raise SnsUnreachable("network down")

    app.state.sns_cert_fetcher = offline
    with TestClient(app) as client:
        assert post(client, sns_signer.notification(ses_payload())).status_code == 503


def test_the_app_installs_the_real_https_fetcher(hook_settings):
    fetcher = create_app(hook_settings).state.sns_cert_fetcher
    assert isinstance(fetcher, CertificateCache)
    with pytest.raises(WebhookRejected):
        fetcher("https://sns.us-east-1.amazonaws.com.evil.example/c.pem")


@pytest.mark.peer
def test_through_uvicorn_signed_events_apply_and_forgeries_do_not(app, sns_signer,
                                                                  hook_settings):
    with serve_app(app) as base:
        with httpx.Client(base_url=base, timeout=10) as http:
            before = snapshot(hook_settings)
            for kind in ("wrong signature", "look-alike host", "topic not on the list",
                         "raw delivery", "huge body"):
                document, status = forged(kind, sns_signer)
                body = document if isinstance(document, bytes) else json.dumps(document)
                assert http.post(URL, content=body).status_code == status, kind

            def chunks():  # no Content-Length: the cap must hold while streaming
                for _ in range(40):
                    yield b"x" * 10_000

            assert http.post(URL, content=chunks()).status_code == 413
            assert snapshot(hook_settings) == before

            envelope = sns_signer.notification(ses_payload("event-complaint"))
            reply = http.post(URL, content=json.dumps(envelope),
                              headers={"x-amz-sns-message-type": "Notification"})
            assert reply.status_code == 200, reply.text
            assert http.post(URL, content=json.dumps(envelope)).json()["status"] == "duplicate"
    assert reader_status(hook_settings) is SubscriberStatus.COMPLAINED
