"""`mailer subscribers forget` says what was there and what it erased (issue 20, item 7).

Forgetting is idempotent (exit 0 either way), so the words are the only way an operator can tell
a typo'd address from an erased reader."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.domain import utcnow
from mailer.subscriptions import workflow
from mailer.store.db import get_engine, session
from mailer.store.models import Campaign, Delivery, DeliveryEventRecord


@pytest.fixture
def forget(mailer_env):
    runner = CliRunner()

    def invoke(address: str):
        return runner.invoke(app, ["subscribers", "forget", address, "--yes"])

    return invoke


def _reader_with_two_deliveries(database_url: str, address: str) -> None:
    with session(get_engine(database_url)) as db:
        reader, _ = workflow.add_subscriber(db, address, confirmed=True)
        for issue in (644, 645):
            campaign = Campaign(issue_number=issue, subject=f"TWiR {issue}", transport="outbox",
                                content_sha256="0" * 64)
            db.add(campaign)
            db.flush()
            delivery = Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=address,
                                status="sent")
            db.add(delivery)
            db.flush()
        db.add(DeliveryEventRecord(event_key="e1", kind="bounce", recipient=address,
                                   occurred_at=utcnow(), delivery_id=delivery.id,
                                   raw=json.dumps({"to": address})))
        db.commit()
        workflow.remove_subscriber(db, address)  # a second history row: unsubscribed


def test_forgetting_an_address_nobody_had_says_so(forget):
    result = forget("nobody@example.org")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "no reader had nobody@example.org" in said
    assert "recorded so it is never added" in said
    assert "forgot nobody" not in said and "erased" not in said
    again = forget("nobody@example.org")  # idempotent, and still true the second time
    assert again.exit_code == 0 and "already forgotten" in " ".join(again.stdout.split())


def test_forgetting_a_reader_lists_what_was_erased(forget, mailer_env):
    _reader_with_two_deliveries(mailer_env["MAILER_DATABASE_URL"], "ann@example.org")
    result = forget("Ann@example.org")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "erased the reader ann@example.org (unsubscribed)" in said
    assert "2 history rows" in said and "2 deliveries" in said
    assert "1 provider event kept without the address" in said
    again = forget("ann@example.org")
    assert again.exit_code == 0 and "no reader had ann@example.org" in " ".join(again.stdout.split())
