"""Issue 21 §2: print the crash and fault matrix (fault × runs × doubled × missed × left unknown).

Each run is one cell of tests/test_fault_matrix.py (see tests/fault_matrix.py): `mailer send`
against the fault-injecting SES peer, killed or faulted at a spread-out moment, then resumed,
its SES events replayed, the settle window (1 s) passed and the send run again; copies are
counted at the endpoint. SQLite with one sender; PostgreSQL with three processes (`mailer send`
and two `mailer worker`) when a database URL is given. A line per run as it ends, then the
tables. The full-disk fault needs a tmpfs (root); it is left out otherwise.

    .venv/bin/python benchmarks/fault_matrix.py
    .venv/bin/python benchmarks/fault_matrix.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/fault_matrix.py --only postgres --postgres URL
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fault_matrix as matrix  # noqa: E402
from tests.plugins.ses_peer import start_fake_ses  # noqa: E402


def tmpfs_mounter(mounted: list[Path]):
    """A ``mount(folder)`` for the full-disk fault, or None where tmpfs cannot be mounted."""
    def mount(folder: Path) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)],
                       check=True, capture_output=True)
        mounted.append(folder)

    return mount if os.geteuid() == 0 else None


def run_all(kind: str, runs, peer, workdir: Path) -> list[matrix.Outcome]:
    outcomes = []
    for number, (fault, moment, go) in enumerate(runs, 1):
        outcome = go(peer, matrix.base_env(peer.env), workdir / f"{kind}-{number}", fault,
                     moment)
        outcomes.append(outcome)
        print(f"{kind} run {number}/{len(runs)}: {fault.name} @ {moment}: struck "
              f"{outcome.happened}, doubled {outcome.doubled}, missed {outcome.missed}, "
              f"unknown {outcome.unknown}, exit codes {outcome.exit_codes}", flush=True)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("MAILER_TEST_DATABASE_URL"),
                        help="a PostgreSQL URL whose server may create databases")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    mounted: list[Path] = []
    mount = tmpfs_mounter(mounted)
    tables = []
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as folder, \
            start_fake_ses() as peer:
        workdir = Path(folder)
        try:
            if args.only != "postgres":
                runs = [(fault, moment,
                         lambda p, e, d, f, m: matrix.sqlite_run(p, e, d, f, m, mount))
                        for fault in matrix.SQLITE_FAULTS for moment in fault.moments
                        if mount is not None or not fault.fill_disk]
                tables.append(matrix.table(f"SQLite, one sender, {matrix.READERS} readers a run",
                                           run_all("sqlite", runs, peer, workdir)))
            if args.only != "sqlite" and args.postgres:
                url = args.postgres
                runs = [(fault, moment,
                         lambda p, e, d, f, m: matrix.postgres_run(p, e, d, f, m, url))
                        for fault in matrix.POSTGRES_FAULTS for moment in fault.moments]
                tables.append(matrix.table(
                    f"PostgreSQL, 3 workers (send + 2 worker), {matrix.POSTGRES_READERS} readers a run",
                    run_all("postgres", runs, peer, workdir)))
            elif args.only != "sqlite":
                tables.append("PostgreSQL: skipped (no --postgres URL, no "
                              "MAILER_TEST_DATABASE_URL)")
        finally:
            for path in mounted:
                subprocess.run(["umount", "-l", str(path)], check=False)
    print()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
