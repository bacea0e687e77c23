"""Fixtures for SES event tests: `readers`, three readers with a sent delivery each (address →
SES message id), and `queue`, an SQS queue on moto_server (client, url) for `mailer events poll`."""

from __future__ import annotations

import pytest

from mailer.domain import DeliveryStatus, SubscriberStatus, utcnow
from mailer.store.db import session
from mailer.store.models import Campaign, Delivery, Subscriber


@pytest.fixture
def readers(engine) -> dict[str, str]:
    """Three active readers, each with a sent delivery: address → SES message id."""
    ids = {"bounce@example.net": "m-bounce", "complain@example.net": "m-complain",
           "deliver@example.net": "m-deliver"}
    with session(engine) as db:
        campaign = Campaign(issue_number=644, subject="TWiR 644", transport="ses",
                            content_sha256="0" * 64)
        db.add(campaign)
        db.flush()
        for email, message_id in ids.items():
            reader = Subscriber(email=email, status=SubscriberStatus.ACTIVE, confirmed_at=utcnow())
            db.add(reader)
            db.flush()
            db.add(Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=email,
                            status=DeliveryStatus.SENT, provider_message_id=message_id))
        db.commit()
    return ids


@pytest.fixture
def queue(moto_ses):
    import boto3

    sqs = boto3.client("sqs", region_name=moto_ses.region, endpoint_url=moto_ses.endpoint_url)
    url = sqs.create_queue(QueueName="twir-ses-events")["QueueUrl"]
    return sqs, url
