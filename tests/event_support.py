"""SES events as they reach mailer: the recorded samples (twins) readdressed to a reader, the SNS
envelope around them, the web hook post, `mailer events ...` run in process, and what they changed.

READER / MESSAGE_ID are the one reader and delivery the `reader` fixture (tests/plugins/webhook.py)
makes; `ses_payload` addresses a sample to them, `about` to any reader."""

from __future__ import annotations

import copy
import json
import subprocess
import uuid

from sqlmodel import func, select

from mailer.domain import SubscriberStatus
from mailer.store.db import get_engine, session
from mailer.store.models import Delivery, DeliveryEventRecord, SnsMessage, Subscriber, SubscriberChange
from tests.conftest import FIXTURES
from tests.mailer_cli import mailer


def run(env: dict, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return mailer(env, *args, stdin=stdin, text=False)


def twin(name: str) -> dict:
    return json.loads((FIXTURES / "ses" / f"{name}.json").read_text())


RECIPIENT_LISTS = {"bounce": "bouncedRecipients", "complaint": "complainedRecipients",
                   "deliveryDelay": "delayedRecipients"}


def retarget(payload: dict, to: str, message_id: str | None, *, delivery: int | None = None,
             campaign: int | None = None, header_delivery: int | None = None) -> dict:
    """The twin, about ``to`` and our message ``message_id``, with or without our ids."""
    payload = copy.deepcopy(payload)
    mail = payload["mail"]
    mail["messageId"] = message_id or f"unknown-{uuid.uuid4()}"
    mail["destination"] = [to]
    for key, listed in RECIPIENT_LISTS.items():
        if key in payload:
            payload[key][listed] = [dict(payload[key][listed][0], emailAddress=to)]
    if "delivery" in payload:
        payload["delivery"]["recipients"] = [to]
    tags = mail.setdefault("tags", {})
    tags.pop("delivery", None)
    tags.pop("campaign", None)
    if delivery is not None:
        tags["delivery"] = [str(delivery)]
    if campaign is not None:
        tags["campaign"] = [str(campaign)]
    headers = [h for h in mail.get("headers", []) if h["name"] != "X-Mailer-Delivery"]
    if header_delivery is not None:
        headers.append({"name": "X-Mailer-Delivery", "value": str(header_delivery)})
    mail["headers"] = headers
    return payload


def about(payload: dict, to: str, message_id: str) -> dict:
    payload["mail"]["messageId"] = message_id
    payload["mail"]["destination"] = [to]
    for key, listed in (("bounce", "bouncedRecipients"), ("complaint", "complainedRecipients")):
        if key in payload:
            payload[key][listed] = [dict(payload[key][listed][0], emailAddress=to)]
    if "delivery" in payload:
        payload["delivery"]["recipients"] = [to]
    return payload


def envelope(payload: dict, message_id: str) -> dict:
    """What SNS puts in an SQS message body or a saved file (unsigned is fine there)."""
    return {"Type": "Notification", "MessageId": message_id,
            "TopicArn": "arn:aws:sns:eu-west-1:210987654321:twir-ses-events",
            "Message": json.dumps(payload), "Timestamp": "2026-03-04T09:13:00.000Z",
            "SignatureVersion": "1", "Signature": "c2ln",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/x.pem"}


def statuses(engine) -> dict[str, str]:
    with session(engine) as db:
        return {s.email: s.status for s in db.exec(select(Subscriber)).all()}


def event_count(engine) -> int:
    with session(engine) as db:
        return len(db.exec(select(DeliveryEventRecord)).all())


def queued(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


URL = "/webhooks/ses"


READER = "reader@example.net"


MESSAGE_ID = "0102019a-webhook-test-000001-000000"


def ses_payload(name: str = "event-bounce") -> dict:
    payload = json.loads((FIXTURES / "ses" / f"{name}.json").read_text())
    payload["mail"]["messageId"] = MESSAGE_ID
    payload["mail"]["destination"] = [READER]
    if "bounce" in payload:
        payload["bounce"]["bouncedRecipients"][0]["emailAddress"] = READER
    if "complaint" in payload:
        payload["complaint"]["complainedRecipients"][0]["emailAddress"] = READER
    if "delivery" in payload:
        payload["delivery"]["recipients"] = [READER]
    return payload


def post(client, document, *, message_type: str | None = None):
    body = document if isinstance(document, (bytes, str)) else json.dumps(document)
    headers = {"content-type": "text/plain; charset=UTF-8"}
    if message_type or isinstance(document, dict) and "Type" in document:
        headers["x-amz-sns-message-type"] = message_type or document["Type"]
    return client.post(URL, content=body, headers=headers)


def snapshot(settings) -> tuple:
    """Everything a message could change."""
    with session(get_engine(settings.database_url)) as db:
        counts = tuple(db.exec(select(func.count()).select_from(model)).one()
                       for model in (DeliveryEventRecord, SnsMessage, SubscriberChange))
        statuses = tuple(db.exec(select(Subscriber.email, Subscriber.status)).all())
        rows = tuple(db.exec(select(Delivery.bounce_type, Delivery.status,
                                    Delivery.delivered_at)).all())
        return counts, statuses, rows


def reader_status(settings) -> SubscriberStatus:
    with session(get_engine(settings.database_url)) as db:
        return SubscriberStatus(db.exec(select(Subscriber.status)
                                        .where(Subscriber.email == READER)).one())


def many_recipient_bounce(count: int) -> dict:
    payload = json.loads((FIXTURES / "ses" / "event-bounce.json").read_text())
    addresses = [f"gone{n:04d}@example.net" for n in range(count)]
    template = payload["bounce"]["bouncedRecipients"][0]
    payload["bounce"]["bouncedRecipients"] = [
        dict(template, emailAddress=address, diagnosticCode=f"smtp; 550 5.1.1 <{address}>: no such user")
        for address in addresses]
    payload["mail"]["destination"] = addresses
    payload["mail"]["commonHeaders"]["to"] = [f"Reader {n} <{a}>" for n, a in enumerate(addresses)]
    return payload
