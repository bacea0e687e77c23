"""SNS envelope checks: what a forger can and cannot get past (pure, no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from mailer.errors import WebhookRejected
from mailer.events import sns
from tests.conftest import FIXTURES
from tests.plugins.sns_signing import CERT_URL, TOPIC_ARN

ALLOWED = [TOPIC_ARN]


class CountingFetcher:
    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


@pytest.fixture
def fetcher(sns_signer) -> CountingFetcher:
    return CountingFetcher(sns_signer.certificate_pem)


def verify(document: dict, fetcher, allowed=ALLOWED) -> sns.SnsEnvelope:
    envelope = sns.parse_envelope(json.dumps(document))
    sns.verify_envelope(envelope, allowed_topics=allowed, fetch_cert=fetcher)
    return envelope


def refused(document: dict, fetcher, allowed=ALLOWED) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        verify(document, fetcher, allowed)
    assert 400 <= caught.value.status_code < 500
    return caught.value


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("subject", [None, "Amazon SES Email Event Notification"])
def test_signed_notifications_pass_with_either_signature_version(sns_signer, fetcher, version,
                                                                 subject):
    document = sns_signer.notification({"eventType": "Send"}, version=version, subject=subject)
    envelope = verify(document, fetcher)
    assert envelope.type == "Notification"
    assert fetcher.urls == [CERT_URL]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_signed_confirmations_pass(sns_signer, fetcher, version, kind):
    envelope = verify(sns_signer.confirmation(kind, version=version), fetcher)
    assert envelope.type == kind


def test_string_to_sign_follows_the_aws_field_order():
    envelope = sns.parse_envelope((FIXTURES / "ses" / "sns-envelope-notification.json").read_text())
    expected = (
        "Message\n" + envelope.message + "\n"
        "MessageId\n6f1e3c2a-0b5d-4c61-9a7e-twir00000001\n"
        "Subject\nAmazon SES Email Event Notification\n"
        "Timestamp\n2026-03-04T09:12:41.000Z\n"
        f"TopicArn\n{TOPIC_ARN}\n"
        "Type\nNotification\n"
    )
    assert sns.string_to_sign(envelope) == expected.encode()

    confirmation = sns.parse_envelope(
        (FIXTURES / "ses" / "sns-envelope-subscription-confirmation.json").read_text())
    lines = sns.string_to_sign(confirmation).decode().split("\n")
    assert lines[0::2][:-1] == ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"]


def test_a_changed_message_breaks_the_signature(sns_signer, fetcher):
    document = sns_signer.notification({"eventType": "Bounce"})
    document["Message"] = json.dumps({"eventType": "Complaint"})
    assert "does not match" in str(refused(document, fetcher))


def test_an_added_subject_breaks_the_signature(sns_signer, fetcher):
    document = sns_signer.notification({"eventType": "Bounce"})
    document["Subject"] = "hello"
    refused(document, fetcher)


def test_unsigned_and_garbage_signatures_are_refused(sns_signer, fetcher):
    document = sns_signer.notification({"eventType": "Bounce"})
    for signature in ("", "not base64 !!", "AAAA"):
        refused(dict(document, Signature=signature), fetcher)
    without = dict(document)
    del without["Signature"]
    with pytest.raises(WebhookRejected):
        sns.parse_envelope(json.dumps(without))


@pytest.mark.parametrize("signed_with,labelled", [(1, "2"), (2, "1")])
def test_signature_version_swap_is_refused(sns_signer, fetcher, signed_with, labelled):
    document = sns_signer.notification({"eventType": "Bounce"}, version=signed_with)
    document["SignatureVersion"] = labelled
    refused(document, fetcher)


@pytest.mark.parametrize("version", ["3", "", "01", "SHA256"])
def test_unknown_signature_versions_are_refused_without_fetching(sns_signer, fetcher, version):
    document = sns_signer.notification({"eventType": "Bounce"})
    document["SignatureVersion"] = version
    refused(document, fetcher)
    assert fetcher.urls == []


BAD_CERT_URLS = [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com.cn.evil.example/cert.pem",
    "https://evilsns.us-east-1.amazonaws.com/cert.pem",
    "https://sns.us-east-1.evil-amazonaws.com/cert.pem",
    "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/cert.pem",
    "https://sns.amazonaws.com/cert.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/cert.pem",
    "https://user:pw@sns.us-east-1.amazonaws.com/cert.pem",
    "https://evil.example\\@sns.us-east-1.amazonaws.com/cert.pem",
    "https://evil.example#@sns.us-east-1.amazonaws.com/cert.pem",
    "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
    "https://sns.us-east-1.amazonaws.com:443/cert.pem",
    "https://sns.us-east-1.amazonaws.com/cert.txt",
    "https://sns.us-east-1.amazonaws.com/cert.pem?x=1",
    "https://sns.us-east-1.amazonaws.com/cert.pem#frag",
    "https://SNS.US-EAST-1.AMAZONAWS.COM/cert.pem",
    "file:///etc/ssl/cert.pem",
    "//sns.us-east-1.amazonaws.com/cert.pem",
    "https://[::1]/cert.pem",
    "",
]


@pytest.mark.parametrize("url", BAD_CERT_URLS)
def test_certificate_urls_off_sns_hosts_are_never_fetched(sns_signer, fetcher, url):
    document = sns_signer.notification({"eventType": "Bounce"}, cert_url=url)
    assert "SigningCertURL" in str(refused(document, fetcher))
    assert fetcher.urls == []


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
])
def test_real_sns_certificate_urls_are_accepted(url):
    assert sns.check_cert_url(url) == url


def test_a_topic_not_on_the_list_is_refused_before_any_fetch(sns_signer, fetcher):
    other = "arn:aws:sns:eu-west-1:999999999999:someone-elses-topic"
    document = sns_signer.notification({"eventType": "Bounce"}, topic_arn=other)
    error = refused(document, fetcher)
    assert "MAILER_SNS_TOPIC_ARNS" in str(error)
    assert fetcher.urls == []
    refused(sns_signer.notification({"eventType": "Bounce"}), fetcher, allowed=[])


def test_an_expired_certificate_is_refused(sns_signer):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    past = datetime.now(UTC) - timedelta(days=400)
    expired = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(sns_signer.key.public_key()).serial_number(1)
        .not_valid_before(past).not_valid_after(past + timedelta(days=30))
        .sign(sns_signer.key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.PEM)
    document = sns_signer.notification({"eventType": "Bounce"})
    assert "expired" in str(refused(document, CountingFetcher(expired)))


def test_another_keys_certificate_does_not_verify(sns_signer):
    from tests.plugins.sns_signing import generate_key_and_certificate

    _, other_pem = generate_key_and_certificate()
    refused(sns_signer.notification({"eventType": "Bounce"}), CountingFetcher(other_pem))


def test_the_certificate_is_fetched_once_and_cached(sns_signer, fetcher):
    cache = sns.CertificateCache(fetcher)
    for _ in range(3):
        verify(sns_signer.notification({"eventType": "Send"}), cache)
    assert fetcher.urls == [CERT_URL]


def test_the_cache_never_keeps_something_that_is_not_a_certificate():
    calls: list[str] = []

    def broken(url: str) -> bytes:
        calls.append(url)
        return b"<html>not a certificate</html>"

    cache = sns.CertificateCache(broken)
    for _ in range(2):
        with pytest.raises(WebhookRejected):
            cache(CERT_URL)
    assert len(calls) == 2
    with pytest.raises(WebhookRejected):
        cache("https://sns.us-east-1.amazonaws.com.evil.example/x.pem")
    assert len(calls) == 2


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"\xff\xfe", b'"text"', b'{"Type": 5}',
                                  b'{"Type": "Other", "Message": ""}'])
def test_malformed_bodies_are_400(body):
    with pytest.raises(WebhookRejected) as caught:
        sns.parse_envelope(body)
    assert caught.value.status_code == 400


def test_a_raw_delivery_body_says_to_turn_raw_delivery_off():
    body = (FIXTURES / "ses" / "event-bounce.json").read_bytes()
    with pytest.raises(WebhookRejected) as caught:
        sns.parse_envelope(body)
    assert caught.value.status_code == 400
    assert "raw message delivery" in str(caught.value)


def test_subscribe_urls_must_be_https_sns_urls(sns_signer):
    good = sns.parse_envelope(json.dumps(sns_signer.confirmation()))
    assert sns.check_subscribe_url(good).startswith("https://sns.eu-west-1.amazonaws.com/?")
    for url in ("http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
                "https://sns.eu-west-1.amazonaws.com.evil.example/?Action=ConfirmSubscription",
                "https://169.254.169.254/latest/meta-data/",
                "https://sns.eu-west-1.amazonaws.com:1/?Action=ConfirmSubscription"):
        bad = sns.parse_envelope(json.dumps(sns_signer.confirmation(subscribe_url=url)))
        with pytest.raises(WebhookRejected):
            sns.check_subscribe_url(bad)


def assert_envelopes_parse(paths) -> None:
    assert paths
    for path in paths:
        envelope = sns.parse_envelope(path.read_bytes())
        assert envelope.type in sns.MESSAGE_TYPES, path
        assert sns.check_cert_url(envelope.signing_cert_url)


def test_every_envelope_twin_parses():
    assert_envelopes_parse(sorted((FIXTURES / "ses").glob("sns-envelope-*.json")))


def test_every_aws_sample_envelope_parses(shared_dir):
    assert_envelopes_parse(sorted((shared_dir / "ses-samples").glob("sns-envelope-*.json")))


def signed_at(signer, moment: datetime | str) -> dict:
    document = signer.notification({"eventType": "Send"})
    stamp = moment if isinstance(moment, str) else (
        moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    return signer.sign(dict(document, Timestamp=stamp))


@pytest.mark.parametrize("age", [timedelta(minutes=-1), timedelta(seconds=0),
                                 timedelta(minutes=59), timedelta(hours=1, minutes=2)])
def test_messages_within_snss_retry_span_pass(sns_signer, fetcher, age):
    """SNS keeps a message's Timestamp across its retries, which last up to an hour."""
    verify(signed_at(sns_signer, datetime.now(UTC) - age), fetcher)


@pytest.mark.parametrize("moment", [
    datetime.now(UTC) - timedelta(hours=2), datetime.now(UTC) - timedelta(days=300),
    datetime.now(UTC) + timedelta(minutes=20), "yesterday", "2026-13-45T00:00:00Z", "",
])
def test_stale_future_or_unreadable_timestamps_are_refused(sns_signer, fetcher, moment):
    error = refused(signed_at(sns_signer, moment), fetcher)
    assert "Timestamp" in str(error)
    assert fetcher.urls == []  # refused before any certificate fetch
