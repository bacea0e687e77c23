"""Import subscribers into fresh SQLite files and print rows/s: a plain CSV file, and a Mailchimp
audience export (a zip, 85 % subscribed, 10 % unsubscribed, 5 % cleaned).

The baseline, in the same run on the same machine, is the naive way: validate each address the
same way and hand one ORM object per row to ``session.add_all``. Every timed run gets the same
start: its database file already created with the schema, the address validator's domain cache
emptied, the input file read once beforehand (warm in the OS cache), and a collected heap.
Peak memory of the Mailchimp import is measured in child processes at two sizes, to show it
stays bounded as the export grows.

``--cli N`` measures what a user runs instead: ``mailer subscribers import FILE`` on an N-row CSV
and ``mailer subscribers import-mailchimp EXPORT.zip`` on an N-row export, each in its own
process with no tuning flags, printing the wall time and the peak RSS of that process
(``getrusage(RUSAGE_CHILDREN)`` in a small launcher), against a baseline in the same run: a
process that only reads the same file with the csv module. ``--database-url`` runs the imports
on another database (PostgreSQL: an empty one, created beforehand). Run:

    .venv/bin/python benchmarks/import.py [--rows 100000] [--mailchimp-rows 200000]
    .venv/bin/python benchmarks/import.py --cli 1000000 [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from mailer.domain import SubscriberStatus, utcnow  # noqa: E402
from mailer.store import subscribers as store_subscribers  # noqa: E402
from mailer.store.db import get_engine, reset_engines  # noqa: E402
from mailer.store.mailchimp_import import import_mailchimp  # noqa: E402
from mailer.store.models import Subscriber  # noqa: E402
from mailer.store.subscribers import import_csv, normalise_address  # noqa: E402
from tests.mailchimp_export import write_large_export  # noqa: E402

SECRET = "benchmark-secret-0123456789abcdef"
MEMORY_PROBE = """
import sys
sys.path.insert(0, {root!r})
from mailer.store.db import get_engine
from mailer.store.mailchimp_import import import_mailchimp
engine = get_engine({url!r})
report = import_mailchimp(engine, {export!r}, secret="benchmark-secret-0123456789abcdef")
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across exec
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith("VmHWM:"))
print(report.rows, peak_kib)
"""


# A launcher that runs one command and prints its exit code, wall time, CPU time (steadier than
# wall time on a shared machine) and peak RSS (KiB): the launcher is small, so the peak Linux
# carries over to the child across exec is not ours.
LAUNCHER = """
import resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
elapsed = time.perf_counter() - started
sys.stderr.write(done.stderr[-2000:] if done.returncode else "")
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(done.returncode, elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
"""
CSV_READ_ONLY = """
import csv, sys
with open(sys.argv[1], newline="", encoding="utf-8-sig") as handle:
    print(sum(1 for _row in csv.reader(handle)))
"""
EXPORT_READ_ONLY = """
import csv, io, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    print(sum(sum(1 for _row in csv.reader(io.TextIOWrapper(archive.open(info), "utf-8-sig",
                                                            newline="")))
              for info in archive.infolist()))
"""


def write_csv(path: Path, rows: int, local: str = "reader") -> None:
    with path.open("w") as handle:
        handle.write("email,name,city\n")
        for n in range(rows):
            handle.write(f"{local}{n}@Example.org,Reader {n},City {n % 97}\n")


def naive_add_all(engine, csv_path: Path) -> int:
    lines = csv_path.read_text().splitlines()[1:]
    now = utcnow()
    with Session(engine) as session:
        session.add_all(Subscriber(email=normalise_address(line.split(",")[0]),
                                   status=SubscriberStatus.ACTIVE, created_at=now,
                                   updated_at=now, source="import") for line in lines)
        session.commit()
    return len(lines)


def same_start(folder: Path, name: str, input_file: Path):
    """A fresh database with its schema, cold validator caches, the input in the OS cache."""
    engine = get_engine(f"sqlite:///{folder / name}")  # creates the schema, outside the timer
    store_subscribers._ascii_domain.cache_clear()
    input_file.read_bytes()
    gc.collect()
    return engine


def timed(label: str, work) -> float:
    started = time.perf_counter()
    rows = work()
    elapsed = time.perf_counter() - started
    print(f"{label:<50} {rows:>8,} rows {elapsed:7.2f} s {rows / elapsed:>10,.0f} rows/s",
          flush=True)
    return rows / elapsed


def peak_memory_mib(folder: Path, rows: int) -> float:
    export = folder / f"memory-{rows}.zip"
    write_large_export(export, rows)
    script = MEMORY_PROBE.format(root=str(ROOT), url=f"sqlite:///{folder / f'memory-{rows}.db'}",
                                 export=str(export))
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.split()
    return int(output[1]) / 1024


def run_measured(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float,
                                                                                float]:
    """(wall seconds, CPU seconds, peak MiB) of ``command`` run as its own process."""
    output = subprocess.run([sys.executable, "-c", LAUNCHER, *command], env=env, cwd=cwd,
                            capture_output=True, text=True, check=True)
    code, seconds, cpu, peak_kib = output.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(command[:4])} failed ({code}): {output.stderr}")
    return float(seconds), float(cpu), int(peak_kib) / 1024


def cli_figures(folder: Path, rows: int, database_url: str | None, again: bool) -> None:
    """The user's commands at ``rows`` rows: time and peak RSS against reading the file alone."""
    csv_path, export = folder / "readers.csv", folder / "audience.zip"
    write_csv(csv_path, rows, local="csv-reader")  # not the export's: each import adds all
    write_large_export(export, rows)
    mailer = str(Path(sys.executable).with_name("mailer"))
    env = {**os.environ, "MAILER_SECRET_KEY": SECRET, "MAILER_PROGRESS_EVERY": "3600",
           "MAILER_DATABASE_URL": database_url or f"sqlite:///{folder / 'cli.db'}"}
    where = "PostgreSQL" if database_url and database_url.startswith("postgres") else "SQLite"
    print(f"{rows:,} rows, {where}, each command its own process:", flush=True)
    for label, command, baseline in (
            ("subscribers import (CSV)", [mailer, "subscribers", "import", str(csv_path)],
             CSV_READ_ONLY),
            ("subscribers import-mailchimp (zip)",
             [mailer, "subscribers", "import-mailchimp", str(export)], EXPORT_READ_ONLY)):
        read_s, read_cpu, read_mib = run_measured(
            [sys.executable, "-c", baseline, str(csv_path if "CSV" in label else export)],
            env, folder)
        seconds, cpu, mib = run_measured(command, env, folder)
        print(f"  {label:<36} {seconds:7.1f} s ({cpu:5.1f} s CPU) {mib:5.0f} MiB peak   "
              f"(csv module reading the file alone: {read_s:4.1f} s ({read_cpu:4.1f} s CPU) "
              f"{read_mib:3.0f} MiB; {cpu / read_cpu:4.1f}x its CPU, +{mib - read_mib:.0f} MiB)",
              flush=True)
        if not again:
            continue
        again_s, again_cpu, again_mib = run_measured(command, env, folder)
        print(f"  {label + ' again':<36} {again_s:7.1f} s ({again_cpu:5.1f} s CPU) "
              f"{again_mib:5.0f} MiB peak", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=None, help="alias of --rows")
    parser.add_argument("--rows", dest="csv_rows", type=int, default=100_000)
    parser.add_argument("--mailchimp-rows", type=int, default=200_000)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe")
    parser.add_argument("--cli", type=int, metavar="N", default=None,
                        help="time the mailer commands on N rows each, in their own processes")
    parser.add_argument("--database-url", default=None,
                        help="with --cli: import into this (empty) database instead of SQLite")
    parser.add_argument("--again", action="store_true",
                        help="with --cli: also time each command run a second time")
    args = parser.parse_args()
    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            cli_figures(Path(tmp), args.cli, args.database_url, args.again)
        return
    rows = args.rows or args.csv_rows
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "readers.csv"
        write_csv(csv_path, rows)
        export = folder / "audience.zip"
        write_large_export(export, args.mailchimp_rows)

        engine = same_start(folder, "naive.db", csv_path)
        baseline = timed("baseline: validate + session.add_all",
                         lambda: naive_add_all(engine, csv_path))
        engine = same_start(folder, "import.db", csv_path)
        ours = timed("import_csv (streamed, bulk insert + history)",
                     lambda: import_csv(engine, csv_path, secret=SECRET).added)
        same_start(folder, "import.db", csv_path)
        again = timed("import_csv again (all already there)",
                      lambda: import_csv(engine, csv_path, secret=SECRET).existing)

        engine = same_start(folder, "mailchimp.db", export)
        chimp = timed("import_mailchimp (zip, streamed, with history)",
                      lambda: import_mailchimp(engine, export, secret=SECRET).rows)
        same_start(folder, "mailchimp.db", export)
        chimp_again = timed("import_mailchimp again (nothing changes)",
                            lambda: import_mailchimp(engine, export, secret=SECRET).rows)
        reset_engines()
        print(f"speed-up over the baseline: import_csv {ours / baseline:.1f}x "
              f"(re-run {again / baseline:.1f}x), Mailchimp {chimp / baseline:.1f}x "
              f"(re-run {chimp_again / baseline:.1f}x); Mailchimp vs import_csv "
              f"{chimp / ours:.2f}x")
        if not args.no_memory:
            small = max(1, args.mailchimp_rows // 10)
            low, high = peak_memory_mib(folder, small), peak_memory_mib(folder, args.mailchimp_rows)
            print(f"peak memory of a Mailchimp import (child process): {small:,} rows "
                  f"{low:.0f} MiB, {args.mailchimp_rows:,} rows {high:.0f} MiB")


if __name__ == "__main__":
    main()
