"""Fixtures for the SES web hook: `hook_settings` (the topic ARNs it accepts), `reader` (one reader
with a sent delivery, READER / MESSAGE_ID in tests.event_support) and `app`, the web app whose SNS
certificate fetcher is the test signer's and whose subscription confirmations are recorded."""

from __future__ import annotations

import pytest

from mailer.config import get_settings
from mailer.domain import SubscriberStatus, utcnow
from mailer.store.db import get_engine, session
from mailer.store.models import Campaign, Delivery, Subscriber
from mailer.web.app import create_app
from tests.event_support import MESSAGE_ID, READER
from tests.plugins.sns_signing import TOPIC_ARN


@pytest.fixture
def hook_settings(mailer_env, monkeypatch):
    monkeypatch.setenv("MAILER_SNS_TOPIC_ARNS", f"{TOPIC_ARN},arn:aws:sns:us-east-1:1:other")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def reader(hook_settings) -> int:
    """One active subscriber with one sent delivery whose SES message id is MESSAGE_ID."""
    engine = get_engine(hook_settings.database_url)
    with session(engine) as db:
        subscriber = Subscriber(email=READER, status=SubscriberStatus.ACTIVE, confirmed_at=utcnow())
        campaign = Campaign(issue_number=644, subject="TWiR 644", transport="ses",
                            content_sha256="0" * 64)
        db.add(subscriber)
        db.add(campaign)
        db.flush()
        db.add(Delivery(campaign_id=campaign.id, subscriber_id=subscriber.id, email=READER,
                        status="sent", provider_message_id=MESSAGE_ID, sent_at=utcnow()))
        db.commit()
        return subscriber.id


@pytest.fixture
def app(hook_settings, sns_signer, reader):
    app = create_app(hook_settings)
    app.state.sns_cert_fetcher = sns_signer.fetcher
    app.state.confirmed = []
    app.state.sns_subscription_confirmer = app.state.confirmed.append
    return app
