"""Import 100,000 subscribers from a CSV file into a fresh SQLite file and print rows/s.

The baseline, in the same run on the same machine, is the naive way: validate each address the
same way and hand one ORM object per row to ``session.add_all``. Run:

    .venv/bin/python benchmarks/import.py [ROWS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from sqlmodel import Session

from mailer.domain import SubscriberStatus, utcnow
from mailer.store.db import get_engine, reset_engines
from mailer.store.models import Subscriber
from mailer.store.subscribers import import_csv, normalise_address

SECRET = "benchmark-secret-0123456789abcdef"


def write_csv(path: Path, rows: int) -> None:
    with path.open("w") as handle:
        handle.write("email,name,city\n")
        for n in range(rows):
            handle.write(f"reader{n}@Example.org,Reader {n},City {n % 97}\n")


def naive_add_all(url: str, csv_path: Path) -> int:
    engine = get_engine(url)
    lines = csv_path.read_text().splitlines()[1:]
    now = utcnow()
    with Session(engine) as session:
        session.add_all(Subscriber(email=normalise_address(line.split(",")[0]),
                                   status=SubscriberStatus.ACTIVE, created_at=now,
                                   updated_at=now, source="import") for line in lines)
        session.commit()
    return len(lines)


def timed(label: str, work) -> float:  # noqa: ANN001
    started = time.perf_counter()
    rows = work()
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {rows:>8} rows {elapsed:7.2f} s {rows / elapsed:>10,.0f} rows/s")
    return rows / elapsed


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "readers.csv"
        write_csv(csv_path, rows)
        baseline = timed("baseline: validate + session.add_all",
                         lambda: naive_add_all(f"sqlite:///{folder / 'naive.db'}", csv_path))
        url = f"sqlite:///{folder / 'import.db'}"
        engine = get_engine(url)
        ours = timed("import_csv (streamed, bulk insert + history)",
                     lambda: import_csv(engine, csv_path, secret=SECRET).added)
        again = timed("import_csv again (all already there)",
                      lambda: import_csv(engine, csv_path, secret=SECRET).existing)
        reset_engines()
    print(f"speed-up over the baseline: {ours / baseline:.1f}x (re-run: {again / baseline:.1f}x)")


if __name__ == "__main__":
    main()
