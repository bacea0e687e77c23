"""How long `mailer --version` takes to answer, against what it cannot beat, in the same run.

Three processes are timed, each started afresh ``--runs`` times (the median is printed):

- ``python -c pass``: the interpreter's own start, the floor;
- ``mailer --version``: the installed command, which imports a command's module only when that
  command runs (issue 22);
- ``--version`` with every command module imported first: what each start cost before, and
  still costs the commands that need boto3, SQLAlchemy, alembic and FastAPI.

The goal is ``mailer --version`` under 0.3 s on the project's 2-core machine. Run:

    .venv/bin/python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

MAILER = str(Path(sys.executable).with_name("mailer"))
EVERY_COMMAND = ("import sys; sys.argv = ['mailer', '--version']; import mailer.cli as cli; "
                 "cli.load_every_command(); cli.main()")
GOAL_SECONDS = 0.3


def median_seconds(command: list[str], runs: int) -> float:
    """The median wall time of ``command``, each run a new process; it must succeed."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs

    median_seconds([MAILER, "--version"], 2)  # warm the OS file cache for all three
    floor = median_seconds([sys.executable, "-c", "pass"], runs)
    lazy = median_seconds([MAILER, "--version"], runs)
    eager = median_seconds([sys.executable, "-c", EVERY_COMMAND], runs)

    print(f"python -c pass                          {floor:6.3f} s")
    print(f"mailer --version                        {lazy:6.3f} s  "
          f"({lazy / floor:.1f}x python -c pass)")
    print(f"mailer --version, every command loaded  {eager:6.3f} s  "
          f"({eager / lazy:.1f}x mailer --version)")
    verdict = "within" if lazy <= GOAL_SECONDS else "OVER"
    print(f"goal: mailer --version <= {GOAL_SECONDS} s: {verdict}")


if __name__ == "__main__":
    main()
