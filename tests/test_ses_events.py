"""SES notifications in both formats → one normalised event per recipient (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.domain import BounceType, EventKind
from mailer.errors import WebhookRejected
from mailer.events.ses import event_key, parse_notification
from tests.conftest import FIXTURES

TWINS = FIXTURES / "ses"
SES_NAMES = sorted(p.name for p in TWINS.glob("*.json") if not p.name.startswith("sns-"))

EXPECTED_KINDS = {
    "event-bounce.json": EventKind.BOUNCE,
    "event-click.json": EventKind.CLICK,
    "event-complaint.json": EventKind.COMPLAINT,
    "event-delivery-delay.json": EventKind.DELIVERY_DELAY,
    "event-delivery.json": EventKind.DELIVERY,
    "event-open.json": EventKind.OPEN,
    "event-reject.json": EventKind.REJECT,
    "event-rendering-failure.json": EventKind.RENDERING_FAILURE,
    "event-send.json": EventKind.SEND,
    "event-subscription.json": EventKind.SUBSCRIPTION,
    "notification-bounce-permanent-no-dsn.json": EventKind.BOUNCE,
    "notification-bounce-permanent-with-dsn.json": EventKind.BOUNCE,
    "notification-complaint-no-feedback-report.json": EventKind.COMPLAINT,
    "notification-complaint-with-feedback-report.json": EventKind.COMPLAINT,
    "notification-delivery.json": EventKind.DELIVERY,
}
# fixtures with no AWS sample: a type SES may add one day is kept, not refused
OWN_KINDS = {"event-future-thing.json": EventKind.OTHER}
# user-chosen names (EmailTags, link tags): their keys are the sender's, not a format's
FREE_FORM_MAPS = {"tags", "linkTags"}


def key_paths(value: object, prefix: str = "") -> set[str]:
    """Every key path in a JSON document (list items merged as ``[]``)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}"
            paths.add(path)
            if key not in FREE_FORM_MAPS:
                paths |= key_paths(child, path)
    elif isinstance(value, list):
        for child in value:
            paths |= key_paths(child, f"{prefix}[]")
    return paths


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_aws_sample_has_a_twin_with_the_same_key_structure(shared_dir):
    originals = sorted((shared_dir / "ses-samples").glob("*.json"))
    assert originals
    for original in originals:
        twin = TWINS / original.name
        assert twin.is_file(), f"no twin for {original.name}"
        assert key_paths(load(twin)) == key_paths(load(original)), original.name
        assert twin.read_text() != original.read_text()


def test_the_twins_cover_every_kind():
    assert set(SES_NAMES) == set(EXPECTED_KINDS) | set(OWN_KINDS)


def check_parsed(path: Path) -> list:
    payload = load(path)
    events = parse_notification(path.read_text())
    assert events, path.name
    for event in events:
        assert event.kind is {**EXPECTED_KINDS, **OWN_KINDS}[path.name], path.name
        assert event.occurred_at.tzinfo is not None
        assert event.occurred_at.utcoffset().total_seconds() == 0
        assert event.provider_message_id == payload["mail"]["messageId"]
        assert event.raw == payload
        assert "@" in event.recipient
    return events


@pytest.mark.parametrize("name", SES_NAMES)
def test_each_twin_parses(name):
    check_parsed(TWINS / name)


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_each_aws_sample_parses(shared_dir, name):
    check_parsed(shared_dir / "ses-samples" / name)


def test_bounce_has_one_event_per_bounced_recipient_not_per_destination():
    events = parse_notification((TWINS / "notification-bounce-permanent-no-dsn.json").read_text())
    assert [e.recipient for e in events] == ["old.job@example.com", "typo@exmaple.com"]
    assert {e.bounce_type for e in events} == {BounceType.PERMANENT}
    assert {e.bounce_subtype for e in events} == {"General"}
    assert len({event_key(e) for e in events}) == 2


def test_event_publishing_bounce_carries_type_subtype_diagnostic_and_our_ids():
    [event] = parse_notification(load(TWINS / "event-bounce.json"))
    assert event.bounce_type is BounceType.PERMANENT
    assert event.bounce_subtype == "NoEmail"
    assert "550 5.1.1" in event.diagnostic
    assert (event.campaign_id, event.delivery_id) == (7, 101)
    assert event.occurred_at == datetime(2026, 3, 4, 9, 12, 40, 118000, tzinfo=UTC)


def test_rendering_failure_with_a_space_and_reject_keep_their_reason():
    [failure] = parse_notification(load(TWINS / "event-rendering-failure.json"))
    assert failure.kind is EventKind.RENDERING_FAILURE
    assert "issue_number" in failure.diagnostic
    [reject] = parse_notification(load(TWINS / "event-reject.json"))
    assert reject.diagnostic == "Bad content"


def test_complaint_feedback_type_and_delay_recipients():
    [complaint] = parse_notification(load(TWINS / "event-complaint.json"))
    assert complaint.diagnostic == "abuse"
    [plain] = parse_notification(load(TWINS / "notification-complaint-no-feedback-report.json"))
    assert plain.diagnostic is None
    [delay] = parse_notification(load(TWINS / "event-delivery-delay.json"))
    assert delay.recipient == "slow.mx@example.net"
    assert "452" in delay.diagnostic


def test_delivery_id_comes_from_the_tag_first_then_the_header():
    payload = load(TWINS / "event-delivery.json")
    assert parse_notification(payload)[0].delivery_id == 103
    payload["mail"]["tags"]["delivery"] = ["55"]
    assert parse_notification(payload)[0].delivery_id == 55
    del payload["mail"]["tags"]["delivery"]
    assert parse_notification(payload)[0].delivery_id == 103  # X-Mailer-Delivery header
    payload["mail"]["headers"] = [h for h in payload["mail"]["headers"]
                                  if h["name"] != "X-Mailer-Delivery"]
    assert parse_notification(payload)[0].delivery_id is None


@pytest.mark.parametrize("bogus", ["abc", "-3", "0", "1e3", ""])
def test_a_non_numeric_delivery_tag_is_ignored(bogus):
    payload = load(TWINS / "event-send.json")
    payload["mail"]["tags"]["delivery"] = [bogus]
    assert parse_notification(payload)[0].delivery_id is None


def test_the_same_payload_always_gets_the_same_key_and_another_payload_another():
    text = (TWINS / "event-open.json").read_text()
    first = parse_notification(text)[0]
    again = parse_notification(json.dumps(json.loads(text), indent=4))[0]
    assert event_key(first) == event_key(again)
    later = json.loads(text)
    later["open"]["timestamp"] = "2026-03-04T18:00:00.000Z"
    assert event_key(parse_notification(later)[0]) != event_key(first)
    assert len(event_key(first)) <= 300


def test_the_sns_subscription_notice_from_ses_is_no_event():
    assert parse_notification('{"notificationType": "AmazonSnsSubscriptionSucceeded"}') == []


@pytest.mark.parametrize("payload,fragment", [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"mail": {}}', "neither eventType"),
    ('{"eventType": "Teleport", "mail": {}}', "no readable timestamp"),  # known or not
    ('{"eventType": "  ", "mail": {}}', "neither eventType"),
    ('{"eventType": "Send"}', "no mail object"),
    ('{"eventType": "Send", "mail": {"destination": ["a@example.org"]}}', "timestamp"),
    ('{"eventType": "Send", "mail": {"timestamp": "2026-01-01T00:00:00Z", "destination": []}}',
     "no recipient"),
])
def test_unreadable_payloads_are_refused_with_a_reason(payload, fragment):
    with pytest.raises(WebhookRejected) as caught:
        parse_notification(payload)
    assert caught.value.status_code == 400
    assert fragment in str(caught.value)
