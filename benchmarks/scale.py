"""A million readers on one small machine (issue 23): every operator read and every big job,
against the goals, with a baseline that counts the rows in Python in the same run.

The database holds READERS confirmed readers (1,000,000 by default) and issue 644 sent to all of
them (0.5 % hard bounces, each with its SES event; 0.05 % complaints). It is built once and kept
in benchmarks/output/, named by backend, size and schema version (the migration head), so a
second run measures at once and a new migration builds a new one. Each command runs as the
operator runs it: a new `mailer` process, start-up included; its peak memory is the process's
own, taken in a small launcher (a child forked from this process would inherit our peak).
Console pages go through the app in process: "first request" is a server that has served nothing
yet, "again" the same server, best of three. Run:

    .venv/bin/python benchmarks/scale.py [READERS] [DATABASE_URL]

With a PostgreSQL URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres) the data goes
into a database of its own on that server, named the same way and kept as well.
"""

from __future__ import annotations

import base64
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, make_url, text
from sqlmodel import Session, select

from mailer.domain import utcnow
from mailer.store.db import get_engine, head_revision, reset_engines
from mailer.store.models import Campaign, Delivery, DeliveryEventRecord, Subscriber, SubscriberChange

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"
MAILER = str(Path(sys.executable).with_name("mailer"))
CHUNK = 50_000
ISSUE = 644
PROVIDERS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me"]
SECRET = "scale-benchmark-secret-key-0123456789abcdef"
ADMIN = ("bench", "bench password 0123")


# ---- the database, built once ------------------------------------------------------------------

def _domain(n: int) -> str:
    return PROVIDERS[n % 5] if n % 10 < 6 else f"d{n % 2000}.example"


def _address(n: int) -> str:
    return f"reader{n}@{_domain(n)}"


def _chunks(rows, size: int = CHUNK):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build(url: str, readers: int) -> None:
    """READERS confirmed readers who joined over a year, and one issue sent to all of them."""
    engine = get_engine(url)
    now = utcnow()
    year = timedelta(days=365)
    with Session(engine) as db:
        for batch in _chunks({"email": _address(n), "status": "active",
                              "created_at": now - year + year * n / readers,
                              "updated_at": now - year + year * n / readers,
                              "confirmed_at": now - year + year * n / readers + timedelta(hours=1),
                              "source": "web"} for n in range(readers)):
            db.execute(insert(Subscriber), batch)
        db.commit()
        ids = db.exec(select(Subscriber.id, Subscriber.email, Subscriber.created_at)
                      .order_by(Subscriber.id)).all()
        for batch in _chunks({"subscriber_id": sid, "at": at, "from_status": "pending",
                              "to_status": "active", "source": "web"} for sid, _, at in ids):
            db.execute(insert(SubscriberChange), batch)
        start = now - timedelta(days=2)
        campaign = Campaign(issue_number=ISSUE, subject=f"This Week in Rust {ISSUE}",
                            transport="ses", content_sha256="0" * 64, started_at=start,
                            status="finished", finished_at=start + timedelta(hours=20))
        db.add(campaign)
        db.commit()
        for batch in _chunks(_delivery(campaign.id, start, n, sid, email)
                             for n, (sid, email, _) in enumerate(ids)):
            db.execute(insert(Delivery), batch)
        db.commit()
        bounced = db.exec(select(Delivery.id, Delivery.email).where(
            Delivery.campaign_id == campaign.id, Delivery.bounced_at.is_not(None))).all()
        for batch in _chunks({"event_key": f"b{did}", "kind": "bounce", "recipient": email,
                              "occurred_at": start, "delivery_id": did, "bounce_type": "permanent",
                              "bounce_subtype": "General",
                              "diagnostic": "smtp; 550 5.1.1 user unknown",
                              "raw": '{"eventType": "Bounce"}'} for did, email in bounced):
            db.execute(insert(DeliveryEventRecord), batch)
        db.commit()
        db.execute(text("ANALYZE"))
        db.commit()
    _recount_if_the_schema_keeps_counters(url)
    reset_engines()


def _delivery(campaign_id: int, start, n: int, sid: int, email: str) -> dict:
    bounced = n % 200 == 7  # 0.5 % hard bounces
    return {"campaign_id": campaign_id, "subscriber_id": sid, "email": email, "status": "sent",
            "sent_at": start + timedelta(seconds=n / 14), "provider_message_id": f"m-{sid}",
            "delivered_at": None if bounced else start + timedelta(seconds=n / 14 + 2),
            "bounced_at": start if bounced else None,
            "bounce_type": "permanent" if bounced else None,
            "complained_at": start if n % 2000 == 11 else None}


def _recount_if_the_schema_keeps_counters(url: str) -> None:
    """Rows written straight into the tables bypass the counters kept on write: rebuild them the
    way an operator would, when this version of mailer has them."""
    help_text = run([MAILER, "db", "--help"], url).stdout
    if "recount" in help_text:
        done = run([MAILER, "db", "recount"], url)
        assert done.returncode == 0, done.stderr


def cached_database(base: str | None, readers: int) -> str:
    """The URL of the kept database for this size and schema, built when missing."""
    head = head_revision()
    OUTPUT.mkdir(exist_ok=True)
    if base is None or base.startswith("sqlite"):
        path = OUTPUT / f"scale-sqlite-{readers}-{head}.db"
        url = f"sqlite:///{path}"
        if not path.exists():
            _timed_build(url, readers, partial=Path(f"{path}.building"))
        return url
    name = f"mailer_scale_{readers}_{head}".lower()
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                    {"n": name}).first()
        if exists is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    if exists is None:
        _timed_build(url, readers)
    return url


def _timed_build(url: str, readers: int, partial: Path | None = None) -> None:
    started = time.perf_counter()
    if partial is not None:  # an interrupted build is not taken for a finished one
        partial.unlink(missing_ok=True)
        build(f"sqlite:///{partial}", readers)
        partial.rename(make_url(url).database)
    else:
        build(url, readers)
    print(f"built {readers:,} readers and {readers:,} deliveries in "
          f"{time.perf_counter() - started:.0f} s")


# ---- measuring -----------------------------------------------------------------------------------

class Ran(subprocess.CompletedProcess):
    seconds: float
    peak_mb: float


def environment(url: str, folder: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    env.update({"MAILER_DATABASE_URL": url, "MAILER_SECRET_KEY": SECRET,
                "MAILER_BASE_URL": "https://news.example.org", "MAILER_TRANSPORT": "outbox",
                "MAILER_FROM": "TWiR <twir@example.org>",
                "MAILER_OUTBOX_DIR": str((folder or Path(tempfile.gettempdir())) / "outbox"),
                "MAILER_SEND_RATE": "100000"})
    return env


# Linux carries a process's peak RSS over to its children (fork copies the counter, exec keeps
# it), so a command started straight from this process, hundreds of MB after the baseline, would
# report our peak as its own. A tiny launcher forks the command from a few-MB interpreter and
# writes the command's own rusage peak (KiB) to a pipe.
PEAK_LAUNCHER = """import os, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def run(args: list[str], url: str, folder: Path | None = None) -> Ran:
    """One command as its own process: wall time, start-up included, and its own peak RSS."""
    peak_read, peak_write = os.pipe()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", PEAK_LAUNCHER, str(peak_write), *args],
            env=environment(url, folder), stdout=out, stderr=err, pass_fds=(peak_write,),
            cwd=folder or tempfile.gettempdir())
        os.close(peak_write)
        process.wait()
        seconds = time.perf_counter() - started
        with os.fdopen(peak_read, "rb") as peak:
            peak_kib = int(peak.read() or 0)
        out.seek(0)
        err.seek(0)
        ran = Ran(args, process.returncode, out.read(), err.read())
    ran.seconds = seconds
    ran.peak_mb = peak_kib / 1024
    return ran


def best(function, repeat: int = 3) -> float:
    fastest = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def counted_in_python(url: str) -> float:
    """The baseline: every delivery of the issue and every reader loaded, counted in Python."""
    def count() -> None:
        engine = get_engine(url)
        with engine.connect() as connection:
            campaign = connection.execute(select(Campaign.id).where(
                Campaign.issue_number == ISSUE)).scalar_one()
            figures: dict[str, int] = {}
            for status, bounced in connection.execute(
                    select(Delivery.status, Delivery.bounce_type)
                    .where(Delivery.campaign_id == campaign)):
                figures[status] = figures.get(status, 0) + 1
                figures[f"bounce {bounced}"] = figures.get(f"bounce {bounced}", 0) + 1
            for (status,) in connection.execute(select(Subscriber.status)):
                figures[status] = figures.get(status, 0) + 1
    return best(count, 1)


def console(url: str):
    warnings.filterwarnings("ignore", module="fastapi.testclient")
    from fastapi.testclient import TestClient

    from mailer.config import get_settings
    from mailer.web.app import create_app

    os.environ.update({"MAILER_DATABASE_URL": url, "MAILER_ADMIN_USER": ADMIN[0],
                       "MAILER_ADMIN_PASSWORD": ADMIN[1], "MAILER_SECRET_KEY": SECRET})
    get_settings.cache_clear()
    return TestClient(create_app(get_settings()))


def page(client, path: str) -> None:
    auth = "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    response = client.get(path, headers={"Authorization": auth})
    assert response.status_code == 200, (path, response.status_code, response.text[:300])


def first_and_again(url: str, path: str) -> tuple[float, float]:
    client = console(url)  # a server that has served nothing yet
    started = time.perf_counter()
    page(client, path)
    first = time.perf_counter() - started
    return first, best(lambda: page(client, path))


def database_size(url: str) -> tuple[int, list[tuple[str, int]]]:
    """Bytes in all, and per table with its indexes, largest first."""
    engine = get_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(text(
                "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m "
                "ON m.name = d.name GROUP BY m.tbl_name")).all()
            total = Path(make_url(url).database).stat().st_size
        else:
            rows = connection.execute(text(
                "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables")).all()
            total = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
    return total, sorted(((name, int(size)) for name, size in rows), key=lambda r: -r[1])


# ---- the table -------------------------------------------------------------------------------------

def line(label: str, figure: str, goal: str, ok: bool, ratio: str = "") -> None:
    print(f"| {label:<48} | {figure:>18} | {ratio:>9} | {goal:<20} | {'ok' if ok else 'MISSED':<6} |")


def write_csv(path: Path, readers: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "joined"])
        for n in range(readers):
            writer.writerow([f"imported{n}@{_domain(n)}", f"Reader {n}", "2025-01-01"])


def import_row(base: str | None, readers: int, folder: Path) -> None:
    source = folder / "readers.csv"
    write_csv(source, readers)
    started = time.perf_counter()
    with source.open(newline="") as handle:  # the baseline: the file read and counted in Python
        rows = sum(1 for _ in csv.DictReader(handle))
    reading = time.perf_counter() - started
    assert rows == readers
    url = (f"sqlite:///{folder / 'import.db'}" if base is None or base.startswith("sqlite")
           else fresh_postgres_database(base, f"mailer_scale_import_{head_revision()}".lower()))
    assert run([MAILER, "db", "upgrade"], url, folder).returncode == 0
    ran = run([MAILER, "subscribers", "import", str(source), "--confirmed"], url, folder)
    assert ran.returncode == 0, ran.stderr[-2000:]
    line(f"subscribers import {readers:,} CSV rows", f"{ran.seconds:.1f} s, {ran.peak_mb:.0f} MB",
         "≤ 40 s, ≤ 150 MB", ran.seconds <= 40 and ran.peak_mb <= 150,
         f"{ran.seconds / reading:.0f}x read")


def fresh_postgres_database(base: str, name: str) -> str:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        # FORCE: a pool still open on the old copy (an earlier run's) must not stop the drop
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def send_row(url: str, baseline: float, folder: Path) -> None:
    if url.startswith("sqlite"):
        copy = folder / "send.db"
        shutil.copyfile(make_url(url).database, copy)
        url = f"sqlite:///{copy}"
        ran = run([MAILER, "send", "--issue", str(ISSUE), "--again", "--limit", "2000", "--yes"],
                  url, folder)
    else:  # a second campaign of the kept database would change it: start one, then drop it
        ran = run([MAILER, "send", "--issue", str(ISSUE), "--again", "--limit", "2000", "--yes"],
                  url, folder)
        _drop_newest_campaign(url)
    assert ran.returncode == 0, ran.stdout[-1000:] + ran.stderr[-2000:]
    line("send start (all queued) + 2,000 sent", f"{ran.seconds:.1f} s, {ran.peak_mb:.0f} MB",
         "≤ 150 MB", ran.peak_mb <= 150)


def _drop_newest_campaign(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as connection:
        newest = connection.execute(text("SELECT max(id) FROM campaign")).scalar()
        for table in ("delivery", "campaign_counts", "send_worker"):
            exists = connection.execute(text(
                "SELECT 1 FROM information_schema.tables WHERE table_name = :t"), {"t": table}).first()
            if exists:
                connection.execute(text(f"DELETE FROM {table} WHERE campaign_id = :c"), {"c": newest})
        connection.execute(text("DELETE FROM campaign WHERE id = :c"), {"c": newest})
    if "recount" in run([MAILER, "db", "--help"], url).stdout:
        run([MAILER, "db", "recount"], url)


def main() -> None:
    readers = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    base = sys.argv[2] if len(sys.argv) > 2 else None
    url = cached_database(base, readers)
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    baseline = counted_in_python(url)
    print(f"\n{backend}, {readers:,} readers, issue {ISSUE} sent to all of them; baseline: "
          f"the issue's deliveries and every reader loaded and counted in Python, "
          f"{baseline:.2f} s (ratio = baseline / figure)\n")
    print(f"| {'operation':<48} | {'now':>18} | {'ratio':>9} | {'goal':<20} | {'':<6} |")
    print(f"|{'-' * 50}|{'-' * 20}|{'-' * 11}|{'-' * 22}|{'-' * 8}|")
    for label, args, goal in [
        (f"mailer stats --issue {ISSUE} --json", ["stats", "--issue", str(ISSUE), "--json"], 0.5),
        ("mailer stats", ["stats"], 0.5),
        ("mailer stats --subscribers", ["stats", "--subscribers"], 0.5),
        ("mailer subscribers count", ["subscribers", "count"], 0.5),
    ]:
        ran = min((run([MAILER, *args], url) for _ in range(2)), key=lambda r: r.seconds)
        assert ran.returncode == 0, ran.stderr[-2000:]
        line(label, f"{ran.seconds:.2f} s", f"≤ {goal} s", ran.seconds <= goal,
             f"{baseline / ran.seconds:.1f}x")
    for label, path in [("/admin", "/admin"), (f"/admin/issues/{ISSUE}", f"/admin/issues/{ISSUE}")]:
        first, again = first_and_again(url, path)
        line(f"{label}, first request / again", f"{first * 1000:.0f} / {again * 1000:.0f} ms",
             "≤ 300 / ≤ 50 ms", first <= 0.3 and again <= 0.05, f"{baseline / first:.1f}x")
    middle = readers // 2
    search = best(lambda: page(console(url), f"/admin/readers?q=reader{middle}@"))
    line("/admin/readers?q=… (part of an address)", f"{search * 1000:.0f} ms", "≤ 150 ms",
         search <= 0.15, f"{baseline / search:.1f}x")
    with tempfile.TemporaryDirectory() as folder:
        send_row(url, baseline, Path(folder))
        import_row(base, readers, Path(folder))
    total, tables = database_size(url)
    print(f"\ndatabase size: {total / 2**20:,.0f} MB; per table with its indexes:")
    for name, size in tables[:12]:
        print(f"  {name:<28} {size / 2**20:9,.1f} MB  {size / readers:7.0f} B per reader")
    reset_engines()


if __name__ == "__main__":
    main()
