"""Several sending processes sharing one campaign on PostgreSQL (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from mailer.domain import CampaignStatus, DeliveryStatus
from mailer.store.db import get_engine
from mailer.store.models import Campaign, SendWorker
from tests.fakes import add_reader_rows
from tests.ledger_support import claim_from_four_connections, start
from tests.fakes import add_readers
from tests.send_runs import ledger_rows, readers, start_send

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def pg_env(mailer_env, pg_url, monkeypatch):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    return {**mailer_env, "MAILER_DATABASE_URL": pg_url}


def test_concurrent_claims_on_postgres_never_overlap(pg_env, pg_url):
    engine = get_engine(pg_url)
    add_reader_rows(engine, 400)
    campaign = start(engine).campaign
    got = claim_from_four_connections(pg_url, campaign.id, 20)
    claimed = [row_id for ids in got.values() for row_id in ids]
    assert len(claimed) == 400 and len(set(claimed)) == 400
    assert sum(1 for ids in got.values() if ids) >= 2  # really shared


@pytest.mark.slow
@pytest.mark.peer
def test_three_processes_share_one_campaign_without_duplicates_or_gaps(
        pg_env, pg_url, fake_ses):
    engine = get_engine(pg_url)
    everyone = readers(300)
    add_readers(engine, *everyone)
    fake_ses.control(latency=0.03, max_send_rate=150)
    env = {**os.environ, **pg_env, **fake_ses.env}

    processes = [start_send(env, "--concurrency", "4") for _ in range(3)]
    results = [process.communicate(timeout=240) for process in processes]

    for process, (_out, err) in zip(processes, results, strict=False):
        assert process.returncode == 0, err
        assert "Traceback" not in err
    stats = fake_ses.stats()
    assert stats["per_recipient"] == {address: 1 for address in everyone}
    with engine.connect() as connection:
        campaigns = connection.execute(select(Campaign.__table__.c.status)).scalars().all()
        workers_left = connection.execute(select(SendWorker.__table__.c.id)).all()
    assert campaigns == [CampaignStatus.FINISHED]
    assert workers_left == []
    rows = ledger_rows(engine)
    assert {row.status for row in rows.values()} == {DeliveryStatus.SENT}
    senders = {row.claimed_by for row in rows.values()}
    assert len(senders) >= 2  # the work was shared, not done by one process alone


@pytest.mark.slow
def test_sigkill_mid_send_then_restart_on_postgres(pg_env, pg_url, fake_ses):
    from tests.send_runs import sigkill_mid_send_then_restart

    sigkill_mid_send_then_restart(get_engine(pg_url), {**os.environ, **pg_env, **fake_ses.env},
                                  fake_ses)
