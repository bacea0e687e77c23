"""An import keeps the addresses it has met in a scratch folder under TMPDIR (personal data). A
killed import cannot remove its own folder; the next import removes it, and leaves alone the
folder of an import still running beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.mailer_cli import MAILER, mailer


def write_readers(path: Path, count: int) -> Path:
    path.write_text("email\n" + "".join(f"reader{n}@example.org\n" for n in range(count)))
    return path


def scratch_folders(root: Path) -> list[Path]:
    return sorted(root.glob("mailer-import-*"))


@pytest.fixture
def scratch_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setenv("TMPDIR", str(root))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.mark.slow
def test_the_next_import_removes_the_folder_a_killed_import_left(mailer_env, scratch_root,
                                                                  tmp_path):
    big = write_readers(tmp_path / "big.csv", 400_000)
    env = {**os.environ, **mailer_env, "TMPDIR": str(scratch_root)}
    killed = subprocess.Popen([MAILER, "subscribers", "import", str(big)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(scratch_root.glob("mailer-import-*/seen.db")):
        assert killed.poll() is None and time.monotonic() < deadline, "no scratch file appeared"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(scratch_folders(scratch_root)) == 1  # what a killed import leaves behind

    small = write_readers(tmp_path / "small.csv", 3)
    done = mailer(mailer_env, "subscribers", "import", str(small))
    assert done.returncode == 0, done.stderr
    assert scratch_folders(scratch_root) == []


def test_an_import_leaves_the_folder_of_one_still_running(mailer_env, scratch_root, tmp_path):
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = scratch_root / f"mailer-import-{running.pid}-abcd1234"
        theirs.mkdir()
        (theirs / "seen.db").write_bytes(b"")
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()  # a pid that existed and ended: its import was killed
        dead = scratch_root / f"mailer-import-{gone.pid}-dcba4321"
        dead.mkdir()
        (dead / "seen.db").write_bytes(b"")

        done = mailer(mailer_env, "subscribers", "import",
                      str(write_readers(tmp_path / "readers.csv", 2)))
        assert done.returncode == 0, done.stderr
        assert scratch_folders(scratch_root) == [theirs]
    finally:
        running.kill()
        running.wait()
