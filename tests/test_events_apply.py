"""Applying SES events to a real database: ledger rows, suppression policy, idempotency."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlmodel import select

from mailer.config import load_settings
from mailer.domain import DeliveryStatus, SubscriberStatus, utcnow
from mailer.errors import StoreError
from mailer.events.apply import ingest_document, ingest_events, ingest_sns_message
from mailer.events.ses import parse_notification
from mailer.events.sns import envelope_from_fields
from mailer.store.db import get_engine, make_engine, session
from mailer.store.models import (
    Campaign,
    Delivery,
    DeliveryEventRecord,
    SnsMessage,
    Subscriber,
    SubscriberChange,
)
from tests.event_support import retarget, twin







class Ledger:
    """A small database: subscribers, campaigns and their delivery rows."""

    def __init__(self, engine, settings) -> None:
        self.engine = engine
        self.settings = settings

    def subscriber(self, email: str, status=SubscriberStatus.ACTIVE) -> int:
        with session(self.engine) as db:
            row = Subscriber(email=email, status=status, confirmed_at=utcnow())
            db.add(row)
            db.commit()
            return row.id

    def campaign(self, issue: int = 644) -> int:
        with session(self.engine) as db:
            row = Campaign(issue_number=issue, subject=f"This Week in Rust {issue}",
                           transport="ses", content_sha256="0" * 64)
            db.add(row)
            db.commit()
            return row.id

    def delivery(self, campaign_id: int, subscriber_id: int, *, status=DeliveryStatus.SENT,
                 message_id: str | None = "auto") -> tuple[int, str | None]:
        if message_id == "auto":
            message_id = f"0102-{uuid.uuid4()}-000000"
        with session(self.engine) as db:
            email = db.get(Subscriber, subscriber_id).email
            row = Delivery(campaign_id=campaign_id, subscriber_id=subscriber_id, email=email,
                           status=status, provider_message_id=message_id,
                           sent_at=utcnow() if status == DeliveryStatus.SENT else None)
            db.add(row)
            db.commit()
            return row.id, message_id

    def apply(self, payload: dict):
        return ingest_events(self.engine, parse_notification(payload), self.settings)

    def row(self, delivery_id: int) -> Delivery:
        with session(self.engine) as db:
            return db.get(Delivery, delivery_id)

    def status(self, subscriber_id: int) -> SubscriberStatus:
        with session(self.engine) as db:
            return SubscriberStatus(db.get(Subscriber, subscriber_id).status)

    def changes(self, subscriber_id: int) -> list[SubscriberChange]:
        with session(self.engine) as db:
            return db.exec(select(SubscriberChange)
                           .where(SubscriberChange.subscriber_id == subscriber_id)).all()

    def events(self) -> list[DeliveryEventRecord]:
        with session(self.engine) as db:
            return db.exec(select(DeliveryEventRecord)).all()


@pytest.fixture
def ledger(engine, settings) -> Ledger:
    return Ledger(engine, settings)


def sent_to(ledger: Ledger, email: str):
    subscriber = ledger.subscriber(email)
    delivery, message_id = ledger.delivery(ledger.campaign(), subscriber)
    return subscriber, delivery, message_id


def test_a_permanent_bounce_suppresses_the_address_at_once(ledger):
    subscriber, delivery, message_id = sent_to(ledger, "gone@example.net")
    result = ledger.apply(retarget(twin("event-bounce"), "gone@example.net", message_id))
    assert result.recorded == {"bounce": 1}
    assert ledger.status(subscriber) is SubscriberStatus.BOUNCED
    row = ledger.row(delivery)
    assert (row.bounce_type, row.status) == ("permanent", DeliveryStatus.SENT)
    assert row.bounced_at is not None
    [change] = ledger.changes(subscriber)
    assert change.source == "ses-bounce" and change.to_status == SubscriberStatus.BOUNCED
    assert "550 5.1.1" in change.detail
    [record] = ledger.events()
    assert record.delivery_id == delivery and record.bounce_subtype == "NoEmail"
    assert json.loads(record.raw)["eventType"] == "Bounce"


def test_the_same_event_twice_changes_nothing_the_second_time(ledger):
    subscriber, delivery, message_id = sent_to(ledger, "twice@example.net")
    payload = retarget(twin("event-bounce"), "twice@example.net", message_id)
    ledger.apply(payload)
    again = ledger.apply(json.loads(json.dumps(payload)))
    assert again.recorded == {} and again.duplicates == 1
    assert len(ledger.events()) == 1
    assert len(ledger.changes(subscriber)) == 1


def test_a_bounce_on_the_account_suppression_list_still_suppresses(ledger):
    subscriber, _, message_id = sent_to(ledger, "listed@example.net")
    payload = retarget(twin("event-bounce"), "listed@example.net", message_id)
    payload["bounce"]["bounceSubType"] = "OnAccountSuppressionList"
    ledger.apply(payload)
    assert ledger.status(subscriber) is SubscriberStatus.BOUNCED


def transient(ledger: Ledger, email: str, message_id: str) -> None:
    payload = retarget(twin("event-bounce"), email, message_id)
    payload["bounce"].update(bounceType="Transient", bounceSubType="MailboxFull")
    ledger.apply(payload)


def test_transient_bounces_suppress_after_three_of_the_last_five_sends(ledger):
    email = "full@example.net"
    subscriber = ledger.subscriber(email)
    sends = [ledger.delivery(ledger.campaign(600 + n), subscriber) for n in range(5)]
    transient(ledger, email, sends[0][1])
    transient(ledger, email, sends[2][1])
    assert ledger.status(subscriber) is SubscriberStatus.ACTIVE
    transient(ledger, email, sends[2][1].replace("0102", "0103"))  # unknown message: no count
    assert ledger.status(subscriber) is SubscriberStatus.ACTIVE
    transient(ledger, email, sends[4][1])
    assert ledger.status(subscriber) is SubscriberStatus.BOUNCED
    assert "3 of the last 5" in ledger.changes(subscriber)[0].detail


def test_old_transient_bounces_fall_out_of_the_window(ledger):
    email = "sometimes@example.net"
    subscriber = ledger.subscriber(email)
    sends = [ledger.delivery(ledger.campaign(600 + n), subscriber) for n in range(7)]
    for index in (0, 1, 6):  # the last five sends are 2..6: only one bounced
        transient(ledger, email, sends[index][1])
    assert ledger.status(subscriber) is SubscriberStatus.ACTIVE
    assert ledger.row(sends[6][0]).bounce_type == "transient"


def test_a_complaint_suppresses_and_outranks_a_bounce(ledger):
    subscriber, delivery, message_id = sent_to(ledger, "angry@example.net")
    ledger.apply(retarget(twin("event-bounce"), "angry@example.net", message_id))
    ledger.apply(retarget(twin("event-complaint"), "angry@example.net", message_id))
    assert ledger.status(subscriber) is SubscriberStatus.COMPLAINED
    assert ledger.row(delivery).complained_at is not None
    assert [c.source for c in ledger.changes(subscriber)] == ["ses-bounce", "ses-complaint"]
    # never back: a later bounce leaves it complained
    later = retarget(twin("event-bounce"), "angry@example.net", message_id)
    later["bounce"]["timestamp"] = "2026-03-09T00:00:00.000Z"
    ledger.apply(later)
    assert ledger.status(subscriber) is SubscriberStatus.COMPLAINED


def test_a_not_spam_report_is_recorded_but_suppresses_nothing(ledger):
    subscriber, delivery, message_id = sent_to(ledger, "fine@example.net")
    payload = retarget(twin("event-complaint"), "fine@example.net", message_id)
    payload["complaint"]["complaintFeedbackType"] = "not-spam"
    result = ledger.apply(payload)
    assert result.recorded == {"complaint": 1}
    assert ledger.status(subscriber) is SubscriberStatus.ACTIVE
    assert ledger.row(delivery).complained_at is None


def test_an_undetermined_bounce_is_recorded_only(ledger):
    subscriber, delivery, message_id = sent_to(ledger, "maybe@example.net")
    payload = retarget(twin("event-bounce"), "maybe@example.net", message_id)
    payload["bounce"]["bounceType"] = "Undetermined"
    ledger.apply(payload)
    assert ledger.status(subscriber) is SubscriberStatus.ACTIVE
    assert ledger.row(delivery).bounce_type is None
    assert ledger.events()[0].bounce_type == "undetermined"


def test_delivery_delay_open_and_click_stamp_the_row(ledger):
    subscriber, delivery, message_id = sent_to(ledger, "reader@example.net")
    for name in ("event-delivery", "event-delivery-delay", "event-open", "event-click"):
        ledger.apply(retarget(twin(name), "reader@example.net", message_id))
    row = ledger.row(delivery)
    assert row.delivered_at.isoformat() == "2026-03-04T09:12:31.902000+00:00"
    assert row.delayed_at and row.opened_at and row.clicked_at
    assert row.status == DeliveryStatus.SENT
    assert ledger.status(subscriber) is SubscriberStatus.ACTIVE


@pytest.mark.parametrize("name,reason", [("event-reject", "Bad content"),
                                         ("event-rendering-failure", "issue_number")])
def test_reject_and_rendering_failure_fail_the_row_with_the_reason(ledger, name, reason):
    _, delivery, message_id = sent_to(ledger, "x@example.net")
    ledger.apply(retarget(twin(name), "x@example.net", message_id))
    row = ledger.row(delivery)
    assert row.status == DeliveryStatus.FAILED
    assert reason in row.error


def test_a_send_event_settles_a_row_a_crash_left_unknown(ledger):
    subscriber = ledger.subscriber("crash@example.net")
    campaign = ledger.campaign()
    delivery, _ = ledger.delivery(campaign, subscriber, status=DeliveryStatus.UNKNOWN,
                                  message_id=None)
    ledger.apply(retarget(twin("event-send"), "crash@example.net", "0102-after-crash",
                          delivery=delivery, campaign=campaign))
    row = ledger.row(delivery)
    assert row.status == DeliveryStatus.SENT
    assert row.provider_message_id == "0102-after-crash"  # later events map by it


def test_events_map_through_the_header_when_tags_are_missing(ledger):
    subscriber = ledger.subscriber("header@example.net")
    delivery, _ = ledger.delivery(ledger.campaign(), subscriber, message_id=None)
    ledger.apply(retarget(twin("event-delivery"), "header@example.net", "0102-by-header",
                          header_delivery=delivery))
    assert ledger.row(delivery).delivered_at is not None
    assert ledger.events()[0].delivery_id == delivery


def test_a_tag_naming_someone_elses_row_does_not_touch_it(ledger):
    victim = ledger.subscriber("victim@example.net")
    campaign = ledger.campaign()
    victim_row, _ = ledger.delivery(campaign, victim, message_id=None)
    result = ledger.apply(retarget(twin("event-bounce"), "stranger@example.org", "0102-x",
                                   delivery=victim_row, campaign=campaign))
    assert result.unmatched == 1
    assert ledger.row(victim_row).bounce_type is None
    assert ledger.status(victim) is SubscriberStatus.ACTIVE


def test_events_for_unknown_messages_are_stored_and_the_address_still_suppressed(ledger):
    # e.g. a confirmation mail, which has no ledger row
    subscriber = ledger.subscriber("confirm.bounce@example.net", SubscriberStatus.PENDING)
    result = ledger.apply(retarget(twin("event-bounce"), "Confirm.Bounce@example.net", None))
    assert result.unmatched == 1 and result.recorded == {"bounce": 1}
    assert ledger.events()[0].delivery_id is None
    assert ledger.status(subscriber) is SubscriberStatus.BOUNCED
    nobody = ledger.apply(retarget(twin("event-delivery"), "nobody@example.org", None))
    assert nobody.recorded == {"delivery": 1}


def test_an_unsubscribe_through_ses_is_honoured(ledger):
    subscriber, _, message_id = sent_to(ledger, "leaving@example.net")
    ledger.apply(retarget(twin("event-subscription"), "leaving@example.net", message_id))
    assert ledger.status(subscriber) is SubscriberStatus.UNSUBSCRIBED


def test_an_sns_message_seen_before_is_ignored(ledger, settings):
    subscriber, _, message_id = sent_to(ledger, "sns@example.net")
    payload = retarget(twin("event-complaint"), "sns@example.net", message_id)
    envelope = envelope_from_fields({
        "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
        "Message": json.dumps(payload), "Timestamp": "2026-03-05T00:00:00Z",
        "SignatureVersion": "2", "Signature": "x", "SigningCertURL": "https://x",
    })
    first = ingest_sns_message(ledger.engine, envelope, settings)
    assert first.recorded == {"complaint": 1}
    again = ingest_sns_message(ledger.engine, envelope, settings)
    assert again.replayed_messages == 1 and again.total == 0
    with session(ledger.engine) as db:
        assert len(db.exec(select(SnsMessage)).all()) == 1
    assert len(ledger.changes(subscriber)) == 1


def test_trusted_documents_may_be_bare_or_enveloped(ledger):
    subscriber, delivery, message_id = sent_to(ledger, "both@example.net")
    bare = retarget(twin("event-delivery"), "both@example.net", message_id)
    assert ingest_document(ledger.engine, bare, ledger.settings).recorded == {"delivery": 1}
    wrapped = {"Type": "Notification", "MessageId": "q-1",
               "Message": json.dumps(retarget(twin("event-open"), "both@example.net",
                                              message_id))}
    assert ingest_document(ledger.engine, wrapped, ledger.settings).recorded == {"open": 1}
    confirmation = {"Type": "SubscriptionConfirmation", "MessageId": "q-2", "Message": "hi"}
    assert ingest_document(ledger.engine, confirmation, ledger.settings).ignored_messages == 1
    assert ledger.row(delivery).opened_at is not None


def test_an_unreachable_database_is_a_store_error(tmp_path, settings):
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    events = parse_notification(twin("event-delivery"))
    with pytest.raises(StoreError):
        ingest_events(engine, events, settings)


def test_the_limits_are_settings(engine, monkeypatch, mailer_env):
    settings = load_settings(transient_bounce_limit=1, transient_bounce_window=1)
    ledger = Ledger(engine, settings)
    subscriber, _, message_id = sent_to(ledger, "strict@example.net")
    transient(ledger, "strict@example.net", message_id)
    assert ledger.status(subscriber) is SubscriberStatus.BOUNCED


@pytest.mark.postgres
def test_the_rules_hold_on_postgresql(pg_url, settings):
    ledger = Ledger(get_engine(pg_url), settings)
    subscriber, delivery, message_id = sent_to(ledger, "pg@example.net")
    payload = retarget(twin("event-complaint"), "pg@example.net", message_id)
    ledger.apply(payload)
    assert ledger.apply(payload).duplicates == 1
    assert ledger.status(subscriber) is SubscriberStatus.COMPLAINED
    assert ledger.row(delivery).complained_at is not None


def test_the_same_sns_message_delivered_concurrently_applies_once(ledger, settings):
    deliver_concurrently(ledger, settings)


@pytest.mark.postgres
def test_concurrent_deliveries_apply_once_on_postgresql(pg_url, settings):
    deliver_concurrently(Ledger(get_engine(pg_url), settings), settings)


def deliver_concurrently(ledger: Ledger, settings) -> None:
    import threading

    subscriber, _, message_id = sent_to(ledger, "race@example.net")
    payload = retarget(twin("event-complaint"), "race@example.net", message_id)
    envelope = envelope_from_fields({
        "Type": "Notification", "MessageId": "m-race", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
        "Message": json.dumps(payload), "Timestamp": "2026-03-05T00:00:00Z",
        "SignatureVersion": "2", "Signature": "x", "SigningCertURL": "https://x",
    })
    start = threading.Barrier(4)
    results, errors = [], []

    def deliver() -> None:
        start.wait()
        try:
            results.append(ingest_sns_message(ledger.engine, envelope, settings))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(result.total for result in results) == 1
    assert len(ledger.events()) == 1
    assert len(ledger.changes(subscriber)) == 1
