"""Issue 21 §2: the crash and fault matrix. Each cell is one run of `mailer send` killed or
faulted at a spread-out moment, resumed, its SES events replayed, settled and sent again (see
tests/fault_matrix.py); afterwards every reader has exactly one copy at the endpoint and no
row is left unknown. `benchmarks/fault_matrix.py` prints the same runs as a table."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import fault_matrix as matrix
from tests.plugins.ses_peer import start_fake_ses

pytestmark = [pytest.mark.slow, pytest.mark.peer]

SQLITE_CELLS = [(fault, moment) for fault in matrix.SQLITE_FAULTS for moment in fault.moments]
POSTGRES_CELLS = [(fault, moment) for fault in matrix.POSTGRES_FAULTS for moment in fault.moments]


def cell_id(cell) -> str:
    fault, moment = cell
    return f"{fault.name.split(' (')[0].split(',')[0].replace(' ', '-')}-{moment}"


@pytest.fixture(scope="module")
def peer():
    """A private peer: the matrix changes its kill and disk options run by run."""
    with start_fake_ses() as handle:
        yield handle


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(folder)``: a small tmpfs there, unmounted afterwards (skips where not allowed)."""
    mounted: list[Path] = []

    def mount(folder: Path) -> None:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def assert_one_copy_each(outcome: matrix.Outcome) -> None:
    assert outcome.happened, f"the fault did not strike:\n{outcome.outputs}"
    assert outcome.exit_codes[0] != 0, outcome.outputs  # the faulted run did not finish
    assert "Traceback" not in outcome.outputs
    assert (outcome.doubled, outcome.missed, outcome.unknown) == (0, 0, 0), outcome.outputs
    assert outcome.exit_codes[-1] == 0, outcome.outputs  # the run after settling: finished


@pytest.mark.parametrize("cell", SQLITE_CELLS, ids=[cell_id(c) for c in SQLITE_CELLS])
def test_sqlite_every_reader_gets_one_copy_after_the_fault_resume_events_and_settle(
        cell, peer, tmp_path, tmpfs, aws_credentials):
    fault, moment = cell
    outcome = matrix.sqlite_run(peer, matrix.base_env(peer.env), tmp_path / "run", fault,
                                moment, tmpfs)
    assert_one_copy_each(outcome)


@pytest.mark.postgres
@pytest.mark.parametrize("cell", POSTGRES_CELLS, ids=[cell_id(c) for c in POSTGRES_CELLS])
def test_postgres_three_workers_every_reader_gets_one_copy_after_the_fault(
        cell, peer, tmp_path, aws_credentials):
    base_url = os.environ.get("MAILER_TEST_DATABASE_URL")
    if not base_url:
        pytest.skip("MAILER_TEST_DATABASE_URL is not set (PostgreSQL tests)")
    fault, moment = cell
    outcome = matrix.postgres_run(peer, matrix.base_env(peer.env), tmp_path / "run", fault,
                                  moment, base_url)
    assert_one_copy_each(outcome)
