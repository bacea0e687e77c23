"""Security issue 19, item 18: a disk that fills up mid-send ends `mailer send` with one
`error: … disk full …` line and a non-zero exit, the readers not yet sent still queued; once
there is space again the same command sends each of them once. Real full disks: small tmpfs
mounts (the tests run as root; they skip where mounting is not allowed)."""

from __future__ import annotations

import collections
import os
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.domain import CampaignStatus, DeliveryStatus
from mailer.store.models import Campaign, Delivery
from tests.mailer_cli import MAILER, outbox
from tests.fakes import add_readers

READERS = [f"reader{n:02d}@example.org" for n in range(40)]


@pytest.fixture
def small_disk(tmp_path):
    """``mount(name, size)``: a tmpfs of ``size`` at a new folder; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def send(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, ["send", "--issue", "644", "--yes", "--concurrency", "1",
                                    *args])


def statuses(url: str) -> collections.Counter:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Delivery.__table__.c.status)).scalars().all()
            campaign = connection.execute(select(Campaign.__table__.c.status)).scalar_one()
    finally:
        engine.dispose()
    return collections.Counter(rows) | collections.Counter({f"campaign {campaign}": 1})


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_a_full_outbox_disk_stops_with_one_line_and_the_rest_queued(
        mailer_env, engine, monkeypatch, small_disk):
    full = small_disk("outbox-disk", "1m")
    monkeypatch.setenv("MAILER_OUTBOX_DIR", str(full / "outbox"))
    env = {**mailer_env, "MAILER_OUTBOX_DIR": str(full / "outbox")}
    add_readers(engine, *READERS)

    first = send()

    assert first.exit_code == 1, first.output
    assert "Traceback" not in first.output
    [line] = error_lines(first.output)
    assert line.startswith("error: disk full: cannot write to MAILER_OUTBOX_DIR") and \
        "No space left on device" in line and "readers are still queued" in line
    written = len(outbox(env))
    assert 0 < written < len(READERS)
    after = statuses(mailer_env["MAILER_DATABASE_URL"])
    assert after == {DeliveryStatus.SENT: written, DeliveryStatus.QUEUED: len(READERS) - written,
                     f"campaign {CampaignStatus.STOPPED}": 1}

    resize(full, "64m")  # space again
    second = send()

    assert second.exit_code == 0, second.output
    assert collections.Counter(m["To"] for m in outbox(env)) == {r: 1 for r in READERS}


def test_a_full_database_disk_mid_send_stops_with_one_line_and_a_rerun_finishes(
        mailer_env, small_disk, tmp_path):
    disk = small_disk("database-disk", "4m")
    url = f"sqlite:///{disk / 'subscribers.db'}"
    env = {**mailer_env, "MAILER_DATABASE_URL": url}
    assert subprocess.run([MAILER, "db", "upgrade"], env=env, capture_output=True).returncode == 0
    add_readers(create_engine(url), *READERS)
    process = subprocess.Popen([MAILER, "send", "--issue", "644", "--yes", "--rate", "4",
                                "--concurrency", "1"], env={**os.environ, **env},
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while len(outbox(env)) < 5:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    filler = fill(disk)  # the database's disk fills up while the send runs

    out, err = process.communicate(timeout=120)

    assert process.returncode == 1, out + err
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert line.startswith(f"error: disk full: the database {disk / 'subscribers.db'} cannot "
                           "be written (database or disk is full)")
    written = len(outbox(env))
    assert written < len(READERS)
    filler.unlink()  # space again

    again = subprocess.run([MAILER, "send", "--issue", "644", "--yes"],
                           env={**os.environ, **env}, cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)

    assert again.returncode == 0, again.stdout + again.stderr
    copies = collections.Counter(m["To"] for m in outbox(env))
    assert copies == {r: 1 for r in READERS}  # the one in flight was written, and not again
    after = statuses(url)
    assert after[DeliveryStatus.SENT] + after[DeliveryStatus.UNKNOWN] == len(READERS)
    assert after[DeliveryStatus.UNKNOWN] <= 1 and after[f"campaign {CampaignStatus.FINISHED}"]


def fill(disk: Path) -> Path:
    """Write a file until the disk has no room left."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler

