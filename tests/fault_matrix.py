"""Issue 21 §2: the crash and fault matrix, shared by tests/test_fault_matrix.py (which asserts
each cell) and benchmarks/fault_matrix.py (which prints the table).

One *run* is what the hourly timer would live through: a fresh ledger of a few dozen readers,
`mailer send --issue 644 --yes` as a real process against the fault-injecting SES peer
(tests/peers/fake_ses.py) with one fault, then, the fault gone: the same command again (the
resume), SES's events for every message the peer accepted (`mailer events replay`), the
short settle window, and the same command once more. Copies are counted where a reader sees
them, at the endpoint: *doubled* readers got two or more, *missed* got none, *left unknown*
are ledger rows still `unknown` at the end.

The sender is killed from outside, at moments the peer picks (the n-th request arrived, its
message accepted, its answer written) or at the n-th accepted message seen by polling (which
lands anywhere in the send loop: claims, commits, between requests). On PostgreSQL the send is
shared by three processes (`mailer send` and two `mailer worker`) over a larger ledger; the
fault is armed only once each of them holds claimed rows, and the peer kills the worker (never
`mailer send`) in the chosen exchange, counted in SendEmail requests from the arming.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mailer.domain import DeliveryStatus
from tests.fakes import ses_event
from tests.mailer_cli import MAILER

SETTLE = "1s"
SETTLE_WAIT = 1.3  # seconds: past MAILER_UNKNOWN_SETTLE_AFTER
# Faults the peer may have on during the first run; all off for the resume.
PEER_FAULTS_OFF = {"lose_answer_rate": 0.0, "lose_answers": 0, "drop_request_rate": 0.0,
                   "kill_pids": [], "kill_on": 0, "fill_path": None, "fill_on": 0}


@dataclass(frozen=True)
class Fault:
    """One row of the matrix: a fault and the moments (one per run) it strikes at."""

    name: str
    moments: tuple[int, ...]  # per run: a request / accepted-message number, or a seed
    peer: dict = field(default_factory=dict)  # peer options for the first run
    kill_at: str | None = None  # the peer kills the sender at this moment of request n
    kill_after_accepted: bool = False  # the harness kills once n messages were accepted
    fill_disk: bool = False  # the database's disk fills up once message n was accepted
    seeded: bool = False  # ``moments`` are seeds of the peer's random faults

    @property
    def runs(self) -> int:
        return len(self.moments)


# Spread-out moments: early, middle and late in a send of ``READERS`` readers.
SQLITE_FAULTS = (
    Fault("SIGKILL when the request arrived (before acceptance)", (1, 7, 15, 24, 33),
          kill_at="request"),
    Fault("SIGKILL after acceptance, before the answer", (2, 9, 17, 26, 34),
          kill_at="accepted"),
    Fault("SIGKILL after the answer (before the finish commit)", (3, 11, 19, 28, 35),
          kill_at="answered"),
    Fault("SIGKILL at a polled moment (claims, commits, startup)", (0, 4, 13, 22, 30),
          kill_after_accepted=True),
    Fault("answers lost after acceptance (closed), 10 %", (1, 2, 3), seeded=True,
          peer={"lose_answer_rate": 0.10, "lose_how": "close"}),
    Fault("connections reset after acceptance, 10 %", (4, 5, 6), seeded=True,
          peer={"lose_answer_rate": 0.10, "lose_how": "reset"}),
    Fault("requests dropped before acceptance (closed), 10 %", (7, 8, 9), seeded=True,
          peer={"drop_request_rate": 0.10, "drop_how": "close"}),
    Fault("connections reset before acceptance, 10 %", (10, 11), seeded=True,
          peer={"drop_request_rate": 0.10, "drop_how": "reset"}),
    Fault("database write fails after acceptance (disk full)", (5, 18, 31), fill_disk=True),
)
POSTGRES_FAULTS = (  # moments counted from when all three processes are sending
    Fault("SIGKILL one worker when its request arrived", (2, 10), kill_at="request"),
    Fault("SIGKILL one worker after acceptance", (3, 8, 14), kill_at="accepted"),
    Fault("SIGKILL one worker after the answer", (4, 9, 15), kill_at="answered"),
    Fault("answers lost after acceptance, 10 %", (12, 13), seeded=True,
          peer={"lose_answer_rate": 0.10, "lose_how": "close"}),
    Fault("requests dropped / reset before acceptance, 10 %", (14, 15), seeded=True,
          peer={"drop_request_rate": 0.10, "drop_how": "reset"}),
)
READERS = 40
# PostgreSQL runs are larger: the sender claims in chunks, and with 40 readers it had claimed
# them all before the two workers joined, so a "kill one worker" found no worker holding rows.
POSTGRES_READERS = 250
PEER_PACE = {"latency": 0.02, "max_send_rate": 40}  # ~1 s of sending: kills find rows in flight
POSTGRES_PACE = {"latency": 0.05, "max_send_rate": 30}
JOINING_LATENCY = 4.0  # seconds per answer until both workers joined: the send waits for them


@dataclass
class Outcome:
    """What one run left: the cell's figures and what the fault really did."""

    fault: str
    doubled: int
    missed: int
    unknown: int
    exit_codes: list[int]  # the first run's processes, the resume, the run after settling
    happened: bool  # the fault struck (a kill, a lost answer, a full disk)
    outputs: str = ""

    @property
    def clean(self) -> bool:
        return self.doubled == self.missed == self.unknown == 0 and self.exit_codes[-1] == 0


# -- the pieces one run is made of ------------------------------------------------------------

def readers(count: int = READERS) -> list[str]:
    return [f"reader{n:03d}@example.org" for n in range(count)]


def prepare_ledger(url: str, addresses: list[str]) -> None:
    """A migrated database with ``addresses`` as active readers (straight in: fast)."""
    from sqlalchemy import insert

    from mailer.domain import utcnow
    from mailer.store.db import make_engine
    from mailer.store.db import ensure_schema
    from mailer.store.models import Subscriber

    engine = make_engine(url)
    try:
        ensure_schema(engine)
        now = utcnow()
        with engine.begin() as connection:
            connection.execute(insert(Subscriber.__table__), [
                dict(email=address, status="active", created_at=now, updated_at=now)
                for address in addresses])
    finally:
        engine.dispose()


def ledger_statuses(url: str) -> dict[str, str]:
    from sqlalchemy import select

    from mailer.store.db import make_engine
    from mailer.store.models import Delivery

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            table = Delivery.__table__
            return dict(connection.execute(select(table.c.email, table.c.status)).all())
    finally:
        engine.dispose()


def start(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([MAILER, *args], env=env, cwd=env["MAILER_RUN_DIR"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MAILER, *args], env=env, cwd=env["MAILER_RUN_DIR"],
                          capture_output=True, text=True, timeout=240)


SEND = ("send", "--issue", "644", "--yes", "--concurrency", "4")



def replay_events(env: dict, peer) -> subprocess.CompletedProcess:
    """Send and Delivery events for every message the peer accepted, through `events replay`."""
    now = datetime.now(UTC)
    path = Path(env["MAILER_RUN_DIR"]) / f"events-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("".join(json.dumps(ses_event(kind, message, now)) + "\n"
                            for message in peer.messages() for kind in ("Send", "Delivery")))
    return run(env, "events", "replay", str(path))


def wait_for_accepted(peer, count: int, processes: list[subprocess.Popen]) -> bool:
    """True once the peer accepted ``count`` messages; False if every sender ended first."""
    deadline = time.monotonic() + 120
    while peer.stats()["accepted"] < count:
        if all(process.poll() is not None for process in processes) \
                or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def finish(processes: list[subprocess.Popen]) -> tuple[list[int], str]:
    codes, text = [], ""
    for process in processes:
        out, err = process.communicate(timeout=240)
        codes.append(process.returncode)
        text += out + err
    return codes, text


def arm(peer, fault: Fault, moment: int, pids: list[int], base_requests: int = 0) -> None:
    """Tell the peer when to kill (the pids are known only once the senders started)."""
    if fault.kill_at:
        peer.control(kill_pids=pids, kill_at=fault.kill_at, kill_on=base_requests + moment)


def peer_options(fault: Fault, moment: int, run_dir: Path) -> dict:
    options = dict(fault.peer)
    if fault.seeded:
        options["seed"] = 2100 + moment
    if fault.fill_disk:
        options.update(fill_path=str(run_dir / "disk" / "filler"), fill_on=moment)
    return options


def fault_struck(fault: Fault, stats: dict, first_codes: list[int]) -> bool:
    if fault.kill_at or fault.kill_after_accepted:
        return any(code == -signal.SIGKILL for code in first_codes)
    if fault.fill_disk:
        return stats["disk_filled"] > 0
    return stats["answers_lost"] + stats["requests_dropped"] > 0


def settle_and_count(env: dict, peer, url: str, fault: Fault, first_codes: list[int],
                     stats: dict, text: str, count: int = READERS) -> Outcome:
    """The fault gone: resume, events, the settle window, the next run; then count."""
    resumed = run(env, *SEND)
    replayed = replay_events(env, peer)
    time.sleep(SETTLE_WAIT)
    settled = run(env, *SEND)
    copies = peer.stats()["per_recipient"]
    everyone = readers(count)
    statuses = ledger_statuses(url)
    return Outcome(
        fault=fault.name,
        doubled=sum(1 for address in everyone if copies.get(address, 0) > 1),
        missed=sum(1 for address in everyone if copies.get(address, 0) == 0),
        unknown=sum(1 for status in statuses.values() if status == DeliveryStatus.UNKNOWN),
        exit_codes=[*first_codes, resumed.returncode, settled.returncode],
        happened=fault_struck(fault, stats, first_codes),
        outputs="\n".join([text, resumed.stdout + resumed.stderr, replayed.stderr,
                           settled.stdout + settled.stderr]))


# -- one run on SQLite: one sender ------------------------------------------------------------

def sqlite_run(peer, base_env: dict, run_dir: Path, fault: Fault, moment: int,
               mount: Callable[[Path], None] | None = None) -> Outcome:
    """``mount(folder)`` puts a small tmpfs at ``folder`` (for the full-disk fault)."""
    run_dir.mkdir(parents=True)
    db_dir = run_dir / "disk" if fault.fill_disk else run_dir
    if fault.fill_disk:
        db_dir.mkdir()
        assert mount is not None, "the full-disk fault needs a tmpfs"
        mount(db_dir)
    url = f"sqlite:///{db_dir / 'subscribers.db'}"
    env = {**base_env, "MAILER_DATABASE_URL": url, "MAILER_RUN_DIR": str(run_dir),
           "MAILER_OUTBOX_DIR": str(run_dir / "outbox"), "MAILER_UNKNOWN_SETTLE_AFTER": SETTLE}
    prepare_ledger(url, readers())
    peer.reset()
    peer.control(keep=True, **PEER_PACE, **peer_options(fault, moment, run_dir))

    sender = start(env, *SEND)
    arm(peer, fault, moment, [sender.pid])
    if fault.kill_after_accepted and wait_for_accepted(peer, moment, [sender]):
        sender.send_signal(signal.SIGKILL)
    codes, text = finish([sender])
    stats = peer.stats()
    peer.control(**PEER_FAULTS_OFF)
    if fault.fill_disk:
        with contextlib.suppress(FileNotFoundError):
            (db_dir / "filler").unlink()  # space again
    return settle_and_count(env, peer, url, fault, codes, stats, text)


# -- one run on PostgreSQL: `mailer send` and two `mailer worker` -----------------------------

@contextlib.contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mailer_matrix_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def postgres_run(peer, base_env: dict, run_dir: Path, fault: Fault, moment: int,
                 base_url: str) -> Outcome:
    run_dir.mkdir(parents=True)
    with postgres_database(base_url) as url:
        env = {**base_env, "MAILER_DATABASE_URL": url, "MAILER_RUN_DIR": str(run_dir),
               "MAILER_OUTBOX_DIR": str(run_dir / "outbox"),
               "MAILER_UNKNOWN_SETTLE_AFTER": SETTLE}
        prepare_ledger(url, readers(POSTGRES_READERS))
        peer.reset()
        peer.control(keep=True, **{**POSTGRES_PACE, "latency": JOINING_LATENCY},
                     **peer_options(fault, moment, run_dir))
        sender = start(env, *SEND)
        processes, joined = [sender], 1
        if wait_for_accepted(peer, 1, processes):  # the campaign is open: the workers join
            processes += [start(env, "worker", "--concurrency", "4") for _ in range(2)]
            joined = wait_for_workers(url, 3, processes)
        holding = wait_until_each_holds_rows(url, processes)
        armed_at = peer.stats()["sendemail_requests"]
        # Only the two `mailer worker` processes may die: "kill one worker" is about a peer
        # dying in the middle of its own rows while the others go on; the peer passes the kill
        # on to the next worker request when the one due came from `mailer send`.
        arm(peer, fault, moment, [p.pid for p in processes[1:]], armed_at)
        peer.control(latency=POSTGRES_PACE["latency"])
        codes, text = finish(processes)
        text += (f"\n[harness] {joined} workers joined, {holding} held rows; armed after "
                 f"SendEmail request {armed_at}; killed {peer.stats()['killed']} of "
                 f"{[p.pid for p in processes]}\n")
        stats = peer.stats()
        peer.control(**PEER_FAULTS_OFF)
        return settle_and_count(env, peer, url, fault, codes, stats, text, POSTGRES_READERS)


def wait_for_workers(url: str, count: int, processes: list[subprocess.Popen]) -> int:
    """Until ``count`` workers are registered on the campaign (or the send ended): how many."""
    from sqlalchemy import func, select

    from mailer.store.db import make_engine
    from mailer.store.models import SendWorker

    engine = make_engine(url)
    deadline = time.monotonic() + 90
    joined = 0
    try:
        while time.monotonic() < deadline and processes[0].poll() is None:
            with engine.connect() as connection:
                joined = connection.execute(
                    select(func.count()).select_from(SendWorker.__table__)).scalar_one()
            if joined >= count:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    return joined


def wait_until_each_holds_rows(url: str, processes: list[subprocess.Popen]) -> int:
    """Until each of ``processes`` holds claimed, unfinished ledger rows (or the send ended, or
    60 s passed): how many did. Arming before that let the sender's request take the kill."""
    from sqlalchemy import func, select

    from mailer.store.db import make_engine
    from mailer.store.models import Delivery

    table = Delivery.__table__
    unfinished = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)
    holders = select(func.count(func.distinct(table.c.claimed_by))).where(
        table.c.claimed_by.is_not(None), table.c.status.in_(unfinished))
    engine = make_engine(url)
    deadline = time.monotonic() + 60
    holding = 0
    try:
        while time.monotonic() < deadline and processes[0].poll() is None:
            with engine.connect() as connection:
                holding = connection.execute(holders).scalar_one()
            if holding >= len(processes):
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    return holding


# -- the table --------------------------------------------------------------------------------

def table(title: str, outcomes: list[Outcome]) -> str:
    """fault × runs × doubled × missed × left unknown, one line per fault, and the total."""
    rows: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        rows.setdefault(outcome.fault, []).append(outcome)
    width = max([len(name) for name in rows] + [len("total")])
    lines = [title, f"{'fault':<{width}}  runs  struck  doubled  missed  left unknown",
             f"{'-' * width}  ----  ------  -------  ------  ------------"]
    for name, group in [*rows.items(), ("total", outcomes)]:
        lines.append(f"{name:<{width}}  {len(group):>4}  {sum(o.happened for o in group):>6}  "
                     f"{sum(o.doubled for o in group):>7}  {sum(o.missed for o in group):>6}  "
                     f"{sum(o.unknown for o in group):>12}")
    return "\n".join(lines)


def sqlite_matrix(peer, base_env: dict, workdir: Path,
                  mount: Callable[[Path], None] | None,
                  faults: tuple[Fault, ...] = SQLITE_FAULTS) -> list[Outcome]:
    outcomes = []
    for index, fault in enumerate(faults):
        if fault.fill_disk and mount is None:
            continue
        for moment in fault.moments:
            outcomes.append(sqlite_run(peer, base_env, workdir / f"sqlite-{index}-{moment}",
                                       fault, moment, mount))
    return outcomes


def postgres_matrix(peer, base_env: dict, workdir: Path, base_url: str,
                    faults: tuple[Fault, ...] = POSTGRES_FAULTS) -> list[Outcome]:
    return [postgres_run(peer, base_env, workdir / f"pg-{index}-{moment}", fault, moment,
                         base_url)
            for index, fault in enumerate(faults) for moment in fault.moments]


def base_env(peer_env: dict) -> dict:
    """The process environment for every mailer command of a run."""
    from tests.conftest import TEST_SECRET

    keep = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return {**keep, **peer_env, "MAILER_SECRET_KEY": TEST_SECRET}
