"""Issue 21 §1, the settle rule on a real SQLite ledger: an `unknown` row is re-queued only when
its window has passed, no event names it, and an event arrived for a message requested after
it (the event path is live). The decision is one conditional UPDATE, so it happens once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from mailer.domain import DeliveryEvent, DeliveryStatus, EventKind, utcnow
from mailer.events.apply import ingest_events
from mailer.store import ledger
from mailer.store.models import Delivery
from tests.fakes import add_reader_rows
from tests.ledger_support import rows, start

D = Delivery.__table__
WINDOW = timedelta(minutes=15)


def campaign_with_requests(engine, *statuses: DeliveryStatus) -> tuple[int, list[Delivery]]:
    """A campaign whose rows were requested one minute apart, 20 minutes ago onwards."""
    add_reader_rows(engine, len(statuses))
    campaign_id = start(engine).campaign.id
    first = utcnow() - timedelta(minutes=20)
    with engine.begin() as connection:
        for n, (row, status) in enumerate(zip(rows(engine, campaign_id), statuses, strict=True)):
            connection.execute(update(D).where(D.c.id == row.id).values(
                status=status.value, claimed_by="gone:1:x",
                claimed_at=first + timedelta(minutes=n)))
    return campaign_id, rows(engine, campaign_id)


def event_for(engine, settings, row: Delivery, kind: EventKind = EventKind.DELIVERY,
              minutes_ago: float = 19.5) -> None:
    """An SES event matched by the ledger tags, stamped by SES ``minutes_ago``."""
    ingest_events(engine, [DeliveryEvent(
        kind=kind, recipient=row.email, occurred_at=utcnow() - timedelta(minutes=minutes_ago),
        provider_message_id=f"ses-{row.id}", delivery_id=row.id, campaign_id=row.campaign_id,
        event_id=f"sns-{row.id}-{kind.value}")], settings)


def statuses(engine, campaign_id: int) -> list[DeliveryStatus]:
    return [row.status for row in rows(engine, campaign_id)]


def test_no_event_for_a_later_request_proves_nothing_so_the_row_stays_unknown(engine, settings):
    sent, unknown = DeliveryStatus.SENT, DeliveryStatus.UNKNOWN
    campaign_id, found = campaign_with_requests(engine, sent, unknown, sent)
    event_for(engine, settings, found[0])  # only the earlier message, stamped before the request

    settling = ledger.settle_unknown(engine, campaign_id, WINDOW)

    assert (settling.requeued, settling.unproven) == (0, 1)
    assert statuses(engine, campaign_id) == [sent, unknown, sent]


def test_an_event_for_a_later_request_requeues_the_row_once(engine, settings):
    campaign_id, found = campaign_with_requests(
        engine, DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.SENT)
    event_for(engine, settings, found[2], EventKind.SEND)

    counted = ledger.settle_unknown(engine, campaign_id, WINDOW, requeue=False)
    assert counted.requeued == 1 and statuses(engine, campaign_id)[1] == DeliveryStatus.UNKNOWN
    first = ledger.settle_unknown(engine, campaign_id, WINDOW)
    second = ledger.settle_unknown(engine, campaign_id, WINDOW)

    assert (first.requeued, second.requeued) == (1, 0)
    requeued = rows(engine, campaign_id)[1]
    assert requeued.status == DeliveryStatus.QUEUED and requeued.claimed_by is None
    assert "re-sent once" in requeued.error


def test_an_event_for_the_row_itself_settles_it_and_nothing_is_requeued(engine, settings):
    campaign_id, found = campaign_with_requests(
        engine, DeliveryStatus.UNKNOWN, DeliveryStatus.SENT)
    event_for(engine, settings, found[1], EventKind.SEND)
    event_for(engine, settings, found[0], EventKind.SEND)  # late, but before the decision

    assert ledger.settle_unknown(engine, campaign_id, WINDOW).requeued == 0
    assert statuses(engine, campaign_id) == [DeliveryStatus.SENT, DeliveryStatus.SENT]


def test_inside_its_window_a_row_waits_for_its_event(engine, settings):
    campaign_id, found = campaign_with_requests(
        engine, DeliveryStatus.UNKNOWN, DeliveryStatus.SENT)
    event_for(engine, settings, found[1], EventKind.SEND)

    settling = ledger.settle_unknown(engine, campaign_id, timedelta(hours=1))

    assert (settling.requeued, settling.waiting, settling.unproven) == (0, 1, 0)
    assert settling.window_ends == found[0].claimed_at + timedelta(hours=1)
    assert statuses(engine, campaign_id)[0] == DeliveryStatus.UNKNOWN


def test_an_event_arriving_after_the_requeue_but_before_the_resend_stops_the_resend(
        engine, settings):
    campaign_id, found = campaign_with_requests(
        engine, DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.SENT)
    event_for(engine, settings, found[2], EventKind.SEND)
    assert ledger.settle_unknown(engine, campaign_id, WINDOW).requeued == 1
    leased = ledger.claim_batch(engine, campaign_id, "w:1:a", 10)
    assert [row.id for row in leased] == [found[1].id]

    event_for(engine, settings, found[1], EventKind.SEND)  # SES did take the first copy

    assert statuses(engine, campaign_id)[1] == DeliveryStatus.SENT
    assert ledger.start_sending(engine, found[1].id, "w:1:a") is None  # so it is not sent again
