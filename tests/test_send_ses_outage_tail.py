"""An SES outage that begins on the last rows of a campaign, through `mailer send` against the
fault-injecting fake_ses endpoint: no later message can prove SES works, so those readers stay
queued (never failed as poisoned), the send exits 1 with the outage line, and a rerun after the
outage sends each of them exactly once."""

from __future__ import annotations

import os

import pytest

from mailer.domain import DeliveryStatus
from tests.fakes import add_readers
from tests.send_runs import ledger_rows, readers, run_send

pytestmark = [pytest.mark.slow, pytest.mark.peer]


def test_an_outage_on_the_last_two_readers_keeps_them_queued_and_a_rerun_sends_them_once(
        mailer_env, engine, fake_ses):
    tail = ["reader0058@example.org", "reader0059@example.org"]
    fake_ses.control(latency=0.005, max_send_rate=100, fail=tail)  # SES down for the last two
    add_readers(engine, *readers(60))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    first = run_send(env, "--concurrency", "1")

    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert "SES kept answering with temporary errors" in first.stderr
    assert "stopped with 2 readers still queued; run the same command to resume" in first.stderr
    rows = ledger_rows(engine)
    assert [rows[address].status for address in tail] == [DeliveryStatus.QUEUED] * 2
    assert DeliveryStatus.FAILED not in {row.status for row in rows.values()}

    fake_ses.control(fail=[])  # the outage is over
    rerun = run_send(env)
    assert rerun.returncode == 0, rerun.stderr
    assert "campaign 1 finished" in rerun.stdout
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers(60)}
