"""The ledger on a real SQLite file: audience, leases, recovery after a dead worker, finishing."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mailer.domain import CampaignStatus, DeliveryStatus, SubscriberStatus, utcnow
from mailer.store import ledger, ledger_writes
from mailer.store.db import make_engine
from mailer.errors import StoreError
from mailer.store.models import Campaign, Delivery, SendWorker, stored_id
from tests.fakes import add_reader_rows
from tests.ledger_support import claim_from_four_connections, rows, set_status, start


def test_audience_is_the_active_readers_when_the_send_starts(engine):
    active = add_reader_rows(engine, 5)
    add_reader_rows(engine, 2, status="pending", start=100)
    add_reader_rows(engine, 1, status="unsubscribed", start=200)

    first = start(engine)
    assert first.created
    assert sorted(row.subscriber_id for row in rows(engine, first.campaign.id)) == active
    assert all(row.status == DeliveryStatus.QUEUED for row in rows(engine, first.campaign.id))

    add_reader_rows(engine, 3, start=300)  # joined after the start: not part of this issue's send
    again = start(engine)
    assert not again.created and again.campaign.id == first.campaign.id
    assert len(rows(engine, first.campaign.id)) == 5


def test_a_finished_issue_is_not_started_again_without_again(engine):
    add_reader_rows(engine, 2)
    campaign = start(engine).campaign
    worker = "w1"
    ledger.register_worker(engine, worker, campaign.id, 10)
    for row in ledger.claim_batch(engine, campaign.id, worker, 10):
        assert ledger.start_sending(engine, row.id, worker) is DeliveryStatus.SENDING
        assert ledger.mark_sent(engine, row.id, worker, f"msg-{row.id}")
    ledger.unregister_worker(engine, worker)
    assert ledger.finish_if_done(engine, campaign.id)

    same = start(engine)
    assert not same.created and same.campaign.status == CampaignStatus.FINISHED
    fresh = start(engine, again=True)
    assert fresh.created and fresh.campaign.id != campaign.id
    assert len(rows(engine, fresh.campaign.id)) == 2


def test_workers_lease_disjoint_batches_that_cover_everyone(engine):
    add_reader_rows(engine, 120)
    campaign = start(engine).campaign
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    while True:
        progressed = False
        for worker, claimed in seen.items():
            batch = ledger.claim_batch(engine, campaign.id, worker, 7)
            claimed.extend(row.id for row in batch)
            progressed = progressed or bool(batch)
        if not progressed:
            break
    everyone = [row.id for row in rows(engine, campaign.id)]
    claimed_ids = seen["a"] + seen["b"] + seen["c"]
    assert sorted(claimed_ids) == everyone
    assert len(set(claimed_ids)) == len(claimed_ids)


def test_claims_from_separate_connections_at_once_never_overlap(settings, engine):
    add_reader_rows(engine, 600)
    campaign = start(engine).campaign
    results = claim_from_four_connections(settings.database_url, campaign.id, 25)
    claimed = [row_id for got in results.values() for row_id in got]
    assert len(claimed) == 600 and len(set(claimed)) == 600


def test_a_reader_who_left_before_their_turn_is_skipped(engine):
    ids = add_reader_rows(engine, 2)
    campaign = start(engine).campaign
    batch = ledger.claim_batch(engine, campaign.id, "w", 10)
    set_status(engine, ids[1], SubscriberStatus.UNSUBSCRIBED)

    assert ledger.start_sending(engine, batch[0].id, "w") is DeliveryStatus.SENDING
    assert ledger.start_sending(engine, batch[1].id, "w") is DeliveryStatus.SKIPPED
    skipped = rows(engine, campaign.id)[1]
    assert skipped.status == DeliveryStatus.SKIPPED and "unsubscribed" in skipped.error


def test_only_in_flight_rows_of_a_dead_worker_become_unknown(engine):
    add_reader_rows(engine, 10)
    campaign = start(engine).campaign
    ledger.register_worker(engine, "dead", campaign.id, 10)
    ledger.register_worker(engine, "alive", campaign.id, 10)
    dead_batch = ledger.claim_batch(engine, campaign.id, "dead", 4)
    alive_batch = ledger.claim_batch(engine, campaign.id, "alive", 4)
    ledger.start_sending(engine, dead_batch[0].id, "dead")  # in flight when it died
    ledger.start_sending(engine, dead_batch[1].id, "dead")
    ledger.mark_sent(engine, dead_batch[1].id, "dead", "m-1")  # finished before it died
    ledger.start_sending(engine, alive_batch[0].id, "alive")

    recovery = ledger.recover_abandoned(engine, campaign.id, is_dead=lambda wid: wid == "dead")

    assert recovery.unknown == 1 and recovery.released == 2
    assert recovery.dead_workers == ("dead",)
    by_id = {row.id: row for row in rows(engine, campaign.id)}
    assert by_id[dead_batch[0].id].status == DeliveryStatus.UNKNOWN
    assert by_id[dead_batch[1].id].status == DeliveryStatus.SENT
    assert all(by_id[r.id].claimed_by is None for r in dead_batch[2:])
    assert by_id[alive_batch[0].id].status == DeliveryStatus.SENDING  # a live peer's: untouched
    assert all(by_id[r.id].claimed_by == "alive" for r in alive_batch[1:])
    # The dead worker's lease is gone: if it was only stalled, it can no longer send those rows.
    assert ledger.start_sending(engine, dead_batch[2].id, "dead") is None
    assert not ledger.mark_sent(engine, dead_batch[0].id, "dead", "late")


def test_a_stale_heartbeat_counts_as_dead(engine):
    add_reader_rows(engine, 3)
    campaign = start(engine).campaign
    ledger.register_worker(engine, "sleepy", campaign.id, 10)
    batch = ledger.claim_batch(engine, campaign.id, "sleepy", 3)
    ledger.start_sending(engine, batch[0].id, "sleepy")
    with engine.begin() as connection:
        connection.execute(update(SendWorker.__table__).values(
            heartbeat_at=utcnow() - timedelta(minutes=5)))

    recovery = ledger.recover_abandoned(engine, campaign.id, stale_after=timedelta(seconds=60))
    assert (recovery.unknown, recovery.released) == (1, 2)
    assert ledger.requeue_unknown(engine, campaign.id) == 1
    assert ledger.count_by_status(engine, campaign.id)[DeliveryStatus.QUEUED] == 3


def test_a_process_that_exited_on_this_host_is_dead_at_once():
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    pid = int(child.stdout)
    host = ledger.new_worker_id().split(":")[0]
    assert ledger.worker_is_dead_locally(f"{host}:{pid}:abcd")
    assert not ledger.worker_is_dead_locally(ledger.new_worker_id())  # ourselves
    assert not ledger.worker_is_dead_locally(f"another-host:{pid}:abcd")


def test_campaign_finishes_only_when_nothing_is_pending(engine):
    add_reader_rows(engine, 2)
    campaign = start(engine).campaign
    batch = ledger.claim_batch(engine, campaign.id, "w", 2)
    ledger.start_sending(engine, batch[0].id, "w")
    ledger.mark_failed(engine, batch[0].id, "w", "rejected: bad mailbox")
    assert not ledger.finish_if_done(engine, campaign.id)
    ledger.start_sending(engine, batch[1].id, "w")
    assert not ledger.finish_if_done(engine, campaign.id)  # in flight
    before = utcnow()
    ledger.mark_sent(engine, batch[1].id, "w", "m")
    assert ledger.finish_if_done(engine, campaign.id)
    sent = rows(engine, campaign.id)[1]
    assert sent.provider_message_id == "m" and before <= sent.sent_at <= utcnow()
    assert ledger.get_campaign(engine, campaign.id).finished_at is not None


def test_two_starts_at_once_share_one_campaign(settings, engine):
    from concurrent.futures import ThreadPoolExecutor

    add_reader_rows(engine, 50)
    barrier = threading.Barrier(4, timeout=30)

    def begin() -> ledger.CampaignStart:
        own = make_engine(settings.database_url)
        try:
            barrier.wait()
            return start(own)
        finally:
            own.dispose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(begin) for _ in range(4)]
        # .result() re-raises what a thread raised; the timeout catches one that never returns
        starts = [future.result(timeout=60) for future in futures]
    assert len(starts) == 4
    assert len({s.campaign.id for s in starts}) == 1
    assert sorted(s.created for s in starts) == [False, False, False, True]
    campaign_id = starts[0].campaign.id
    with engine.connect() as connection:
        assert connection.execute(select(Campaign.__table__.c.id)).all() == [(campaign_id,)]
    assert len(rows(engine, campaign_id)) == 50


@pytest.mark.parametrize("limit", [0, -1])
def test_claiming_nothing_is_harmless(engine, limit):
    add_reader_rows(engine, 1)
    campaign = start(engine).campaign
    assert ledger.claim_batch(engine, campaign.id, "w", limit) == []


def test_many_threads_writing_at_once_each_get_their_own_committed_answer(engine):
    """The per-message writes of 16 sender threads share commits; none is lost or mixed up."""
    add_reader_rows(engine, 160)
    campaign = start(engine).campaign
    rows = ledger.claim_batch(engine, campaign.id, "w", 160)
    answers: dict[int, tuple] = {}

    def sender(mine):
        for row in mine:
            started = ledger.start_sending(engine, row.id, "w")
            sent = ledger.mark_sent(engine, row.id, "w", f"ses-{row.id}")
            answers[row.id] = (started, sent)

    threads = [threading.Thread(target=sender, args=(rows[n::16],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {row.id: (DeliveryStatus.SENDING, True) for row in rows}
    with engine.connect() as connection:
        stored = dict(connection.execute(
            select(Delivery.id, Delivery.provider_message_id).where(Delivery.status == "sent")).all())
    assert stored == {row.id: f"ses-{row.id}" for row in rows}


def test_a_write_that_fails_raises_in_its_caller_and_commits_nothing(engine):
    add_reader_rows(engine, 1)
    campaign = start(engine).campaign
    (row,) = ledger.claim_batch(engine, campaign.id, "w", 1)
    assert ledger.start_sending(engine, row.id, "w") is DeliveryStatus.SENDING

    def broken(cursor):
        cursor.execute("UPDATE delivery SET status = 'sent' WHERE id = %d" % row.id)
        cursor.execute("SELECT * FROM no_such_table")

    with pytest.raises(Exception, match="no_such_table"):
        ledger_writes.group_commit(engine).run(broken)
    with engine.connect() as connection:
        assert connection.execute(select(Delivery.status)).scalar_one() == "sending"


def test_an_engine_let_go_is_not_kept_alive_by_the_write_machinery(engine, settings):
    """A process that opens engines for a while (the web app, a long test run) must not keep
    every one of them, with its connection pool, alive through the ledger's caches."""
    import gc
    import weakref

    add_reader_rows(engine, 1)
    campaign = start(engine).campaign
    own = make_engine(settings.database_url)
    (row,) = ledger.claim_batch(own, campaign.id, "w", 1)
    assert ledger.start_sending(own, row.id, "w") is DeliveryStatus.SENDING  # group commit
    assert ledger.mark_sent(own, row.id, "w", "ses-1")
    gone = weakref.ref(own)
    own.dispose()
    del own
    gc.collect()
    assert gone() is None


def test_an_id_read_back_is_never_passed_on_as_none():
    # models type ``id`` as optional for a row not saved yet; one read from the database has it
    assert stored_id(7) == 7
    with pytest.raises(StoreError, match="has no id"):
        stored_id(Campaign(issue_number=1, subject="s", transport="outbox", content_sha256="x").id)
