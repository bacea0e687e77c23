"""A Dispatcher run in process on a fake rendered issue, and the ledger's status counts after it."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.dispatch import Dispatcher, MessageComposer, SendOptions
from mailer.domain import DeliveryStatus
from mailer.store import ledger


PLACEHOLDER = "%%UNSUB%%"


@dataclass(frozen=True)
class FakeRendered:
    subject: str = "This Week in Rust 644"
    html: str = f"<p>Issue 644</p><a href='{PLACEHOLDER}'>unsubscribe</a>"
    text: str = f"Issue 644\nUnsubscribe: {PLACEHOLDER}\n"


def fake_personalise(rendered, *, unsubscribe_url: str, manage_url: str) -> tuple[str, str]:
    return (rendered.html.replace(PLACEHOLDER, unsubscribe_url),
            rendered.text.replace(PLACEHOLDER, unsubscribe_url))


def run(engine, settings, transport, campaign, *, quota=None, **options):
    composer = MessageComposer(FakeRendered(), settings, campaign_id=campaign.id,
                               issue_number=campaign.issue_number, personalise=fake_personalise)
    opts = dict(rate=10_000, concurrency=4, backoff_base=0.001, backoff_cap=0.01,
                heartbeat_interval=0.05)
    opts.update(options)
    dispatcher = Dispatcher(engine, transport, composer, campaign.id, SendOptions(**opts),
                            quota=quota)
    return dispatcher.run()


def statuses(engine, campaign_id) -> dict[DeliveryStatus, int]:
    return {k: v for k, v in ledger.count_by_status(engine, campaign_id).items() if v}
