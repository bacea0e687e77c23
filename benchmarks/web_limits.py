"""What counting the web app's limits in the database costs per request: microseconds per
``hit`` of the database-backed limiter (the one `mailer serve` uses, shared by every process)
against the in-memory one it replaced, in the same run, on SQLite (WAL) and, when
MAILER_BENCH_DATABASE_URL names a PostgreSQL server, there too (in a scratch database it
creates and drops).

Each hit comes from one of a thousand networks, as a burst of sign-ups from many clients would,
so most hits add a row and some update one. Run:

    .venv/bin/python benchmarks/web_limits.py [HITS]
    MAILER_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/web_limits.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NETWORKS = 1000
SECRET = "bench-web-limits-key-0123456789abcdef"


def per_hit_microseconds(limiter, hits: int) -> float:
    keys = [f"198.51.{n // 256}.{n % 256}" for n in range(NETWORKS)]
    started = time.perf_counter()
    for n in range(hits):
        limiter.hit(keys[n % NETWORKS])
    return (time.perf_counter() - started) / hits * 1e6


def database_limiter(url: str, scope: str):
    from mailer.store.db import ensure_schema, get_engine
    from mailer.web.limiter import DatabaseWindowLimiter

    engine = get_engine(url)
    ensure_schema(engine)
    return DatabaseWindowLimiter(scope, 1_000_000, 60.0, engine=lambda: engine, secret=SECRET)


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from mailer.store.db import reset_engines

    name = f"mailer_bench_limits_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        reset_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    hits = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    from mailer.web.limiter import SlidingWindowLimiter

    memory = per_hit_microseconds(SlidingWindowLimiter(1_000_000, window=60.0), hits)
    print(f"{hits} hits from {NETWORKS} networks (load average {os.getloadavg()[0]:.1f})")
    print(f"  in memory (one process only)   {memory:9.1f} µs/hit")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'subscribers.db'}"
        sqlite = per_hit_microseconds(database_limiter(url, "bench"), hits)
        print(f"  SQLite, shared by processes    {sqlite:9.1f} µs/hit  "
              f"(+{sqlite - memory:.1f} µs, x{sqlite / memory:.0f})")
    server = os.environ.get("MAILER_BENCH_DATABASE_URL")
    if server:
        with scratch_database(server) as pg_url:
            postgres = per_hit_microseconds(database_limiter(pg_url, "bench"), hits)
        print(f"  PostgreSQL, shared by processes{postgres:9.1f} µs/hit  "
              f"(+{postgres - memory:.1f} µs, x{postgres / memory:.0f})")
    else:
        print("  PostgreSQL: set MAILER_BENCH_DATABASE_URL to measure it too")


if __name__ == "__main__":
    main()
