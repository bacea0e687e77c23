"""Kill `mailer send` mid-send (SIGKILL, SIGTERM), start it again, count every reader's copies
at the SES endpoint: exactly one each, except rows reported `unknown` (at most the concurrency)."""

from __future__ import annotations

import os
import re
import signal

import pytest

from mailer.domain import DeliveryStatus
from tests.fakes import add_readers
from tests.send_runs import ledger_rows, readers, run_send, start_send, wait_for_accepted
from tests.send_runs import CONCURRENCY, sigkill_mid_send_then_restart

pytestmark = [pytest.mark.slow, pytest.mark.peer]


def test_sigkill_mid_send_then_restart_sends_everyone_once_except_reported_unknowns(
        mailer_env, engine, fake_ses):
    sigkill_mid_send_then_restart(engine, {**os.environ, **mailer_env, **fake_ses.env}, fake_ses)


def test_sigterm_finishes_in_flight_messages_and_leaves_nothing_uncertain(
        mailer_env, engine, fake_ses):
    fake_ses.control(latency=0.05, max_send_rate=60)
    everyone = readers(200)
    add_readers(engine, *everyone)
    env = {**os.environ, **mailer_env, **fake_ses.env}

    process = start_send(env, "--concurrency", str(CONCURRENCY))
    wait_for_accepted(fake_ses, 40, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130
    assert "SIGTERM" in err and "resume" in err and "Traceback" not in err
    statuses = {row.status for row in ledger_rows(engine).values()}
    assert DeliveryStatus.SENDING not in statuses and DeliveryStatus.UNKNOWN not in statuses
    sent = sum(1 for row in ledger_rows(engine).values() if row.status == DeliveryStatus.SENT)
    assert sent == fake_ses.stats()["accepted"] < 200  # every accepted message is on the ledger
    assert re.search(r"this run: \d+ sent", out)

    resumed = run_send(env, "--concurrency", str(CONCURRENCY))
    assert resumed.returncode == 0, resumed.stderr
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in everyone}
