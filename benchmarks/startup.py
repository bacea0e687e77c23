"""How long mailer's commands take to answer, start-up included, against what they cannot beat,
in the same run.

Each process is started afresh ``--runs`` times (the median is printed):

- ``python -c pass``: the interpreter's own start, the floor;
- ``mailer --version``: the installed command, which imports a command's module only when that
  command runs (issue 22);
- ``--version`` with every command module imported first: what each start cost before, and
  still costs the commands that need boto3, SQLAlchemy, alembic and FastAPI;
- the read-only commands an operator runs most (issue 23): ``mailer stats``, ``mailer stats
  --subscribers`` and ``mailer subscribers count``, against a small database built once for the
  run (``--readers`` confirmed readers and issue 644 sent to all of them, as
  ``benchmarks/scale.py`` builds it) or the one ``--database-url`` names. They read kept
  counters, so the size of the list hardly matters: what they cost is their start.

The goals on the project's 2-core machine: ``mailer --version`` under 0.3 s, each read-only
command under 0.5 s. The load of the machine is printed with the figures (``os.getloadavg``):
on a shared machine compare the ratios, not the seconds. Run:

    .venv/bin/python benchmarks/startup.py [--runs 15] [--readers 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MAILER = str(Path(sys.executable).with_name("mailer"))
EVERY_COMMAND = ("import sys; sys.argv = ['mailer', '--version']; import mailer.cli as cli; "
                 "cli.load_every_command(); cli.main()")
GOAL_SECONDS = 0.3
READ_GOAL_SECONDS = 0.5
READ_COMMANDS = (["stats"], ["stats", "--subscribers"], ["subscribers", "count"])


def median_seconds(command: list[str], runs: int, env: dict[str, str] | None = None,
                   cwd: str | None = None) -> float:
    """The median wall time of ``command``, each run a new process; it must succeed."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env, cwd=cwd, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): "
                             f"{done.stderr[-2000:]}")
    return statistics.median(times)


def small_database(folder: Path, readers: int) -> str:
    """A database of ``readers`` readers and one issue sent to them, as scale.py builds it."""
    from scale import build

    from mailer.store.db import reset_engines

    url = f"sqlite:///{folder / 'startup.db'}"
    build(url, readers)
    reset_engines()
    return url


def load() -> str:
    return "load average " + ", ".join(f"{figure:.2f}" for figure in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--readers", type=int, default=1_000,
                        help="readers in the database the read-only commands read")
    parser.add_argument("--database-url", default=None,
                        help="read this database instead of building a small one")
    args = parser.parse_args()
    runs = args.runs

    with tempfile.TemporaryDirectory() as folder:
        from scale import environment

        url = args.database_url or small_database(Path(folder), args.readers)
        env = environment(url, Path(folder))
        print(f"before: {load()}")
        median_seconds([MAILER, "--version"], 2)  # warm the OS file cache for all of them
        for command in READ_COMMANDS:
            median_seconds([MAILER, *command], 1, env, folder)
        floor = median_seconds([sys.executable, "-c", "pass"], runs)
        lazy = median_seconds([MAILER, "--version"], runs)
        eager = median_seconds([sys.executable, "-c", EVERY_COMMAND], runs)
        reads = {" ".join(command): median_seconds([MAILER, *command], runs, env, folder)
                 for command in READ_COMMANDS}

    print(f"python -c pass                          {floor:6.3f} s")
    print(f"mailer --version                        {lazy:6.3f} s  "
          f"({lazy / floor:.1f}x python -c pass)")
    print(f"mailer --version, every command loaded  {eager:6.3f} s  "
          f"({eager / lazy:.1f}x mailer --version)")
    where = args.database_url or f"{args.readers:,} readers"
    for name, seconds in reads.items():
        print(f"mailer {name:<32} {seconds:6.3f} s  ({seconds / lazy:.1f}x mailer --version, "
              f"{seconds / floor:.1f}x python -c pass; {where})")
    verdict = "within" if lazy <= GOAL_SECONDS else "OVER"
    print(f"goal: mailer --version <= {GOAL_SECONDS} s: {verdict}")
    slowest = max(reads.values())
    verdict = "within" if slowest <= READ_GOAL_SECONDS else "OVER"
    print(f"goal: each read-only command <= {READ_GOAL_SECONDS} s: {verdict} "
          f"(slowest {slowest:.3f} s)")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
