"""`mailer send` and other commands run as real subprocesses (the installed `mailer` script), and
what they leave behind: the ledger's rows by address, the campaigns, the outbox's messages.

Shared by the SES, crash, settle and PostgreSQL send tests; `tests.mailer_cli` runs in process."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from mailer.domain import DeliveryStatus
from mailer.store.models import Campaign, Delivery, Subscriber
from tests.fakes import add_readers

MAILER = str(Path(sys.executable).with_name("mailer"))


def command(env: dict, *args: str) -> list[str]:
    """`mailer send` of issue 644 without the confirmation prompt, plus `args`."""
    return [MAILER, "send", "--issue", "644", "--yes", *args]


def run_send(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command(env, *args), env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=Path(env["MAILER_OUTBOX_DIR"]).parent)


def start_send(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(command(env, *args), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            cwd=Path(env["MAILER_OUTBOX_DIR"]).parent)


def wait_for_accepted(fake_ses, count: int, process: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while fake_ses.stats()["accepted"] < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the send did not get going"
        time.sleep(0.05)


def readers(count: int) -> list[str]:
    return [f"reader{n:04d}@example.org" for n in range(count)]


def ledger_rows(engine) -> dict[str, Delivery]:
    with engine.connect() as connection:
        found = connection.execute(select(Delivery.__table__)).mappings().all()
    return {row["email"]: Delivery.model_validate(dict(row)) for row in found}


def outbox_messages(env: dict) -> list[email.message.EmailMessage]:
    folder = Path(env["MAILER_OUTBOX_DIR"]) / "new"
    if not folder.is_dir():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(folder.iterdir())]


def campaigns(engine) -> list[Campaign]:
    with engine.connect() as connection:
        return [Campaign.model_validate(dict(row)) for row in
                connection.execute(select(Campaign.__table__)).mappings()]


# The worker count the crash scenarios send with; at most this many messages are in flight.
CONCURRENCY = 8


def sigkill_mid_send_then_restart(engine, env: dict, fake_ses) -> None:
    """SIGKILL a send of 300 readers mid-way, restart it, then resend the unknowns: everyone gets
    one copy except reported unknowns (at most one). Shared by test_send_crash (SQLite) and
    test_send_postgres."""
    fake_ses.control(latency=0.05, max_send_rate=100)
    everyone = readers(300)
    add_readers(engine, *everyone)

    process = start_send(env, "--concurrency", str(CONCURRENCY))
    wait_for_accepted(fake_ses, 60, process)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    restart = run_send(env, "--concurrency", str(CONCURRENCY))
    assert restart.returncode == 4, restart.stderr  # 4: rows left unknown, not finished
    unknown = {address for address, row in ledger_rows(engine).items()
               if row.status == DeliveryStatus.UNKNOWN}
    # ~5 messages are in flight at any moment (100/s x 50 ms), so the kill catches some.
    assert 1 <= len(unknown) <= CONCURRENCY
    assert f"{len(unknown)} deliveries are unknown" in restart.stderr
    copies = fake_ses.stats()["per_recipient"]
    for address in everyone:
        if address in unknown:
            assert copies.get(address, 0) <= 1  # maybe it left before the kill, never twice
        else:
            assert copies.get(address) == 1, address

    resend = run_send(env, "--resend-unknown")
    assert resend.returncode == 0, resend.stderr
    copies = fake_ses.stats()["per_recipient"]
    assert set(copies) == set(everyone)
    assert all(count == 1 or address in unknown for address, count in copies.items())


def mailer_subprocess(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Any `mailer` command as a subprocess of the installed script (unlike tests.mailer_cli.mailer,
    which runs in process), from the folder above the outbox, with a 120 s limit."""
    return subprocess.run([MAILER, *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(env["MAILER_OUTBOX_DIR"]).parent)


def subscriber_ids(engine) -> dict[str, int]:
    with engine.connect() as connection:
        table = Subscriber.__table__
        return dict(connection.execute(select(table.c.email, table.c.id)).all())
