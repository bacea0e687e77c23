"""`mailer init`: a first run's .env, as a newcomer makes it (issue 15)."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import secret_key_problem
from tests.mailer_cli import MAILER


def init(*args: str):
    return CliRunner().invoke(app, ["init", *args])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_private_env_with_a_random_key_and_the_given_values(mailer_env, tmp_path):
    result = init("--from", "Rust Weekly <weekly@example.org>", "--base-url",
                  "https://twir.example.org/", "--transport", "ses", "--yes")

    assert result.exit_code == 0, result.output
    env_file = tmp_path / ".env"
    assert mode(env_file) == 0o600
    values = dotenv_values(env_file)
    assert values["MAILER_FROM"] == "Rust Weekly <weekly@example.org>"
    assert values["MAILER_BASE_URL"] == "https://twir.example.org"
    assert values["MAILER_TRANSPORT"] == "ses"
    assert secret_key_problem(values["MAILER_SECRET_KEY"]) is None
    assert "wrote" in result.stdout and "mode 0600" in result.stdout
    next_lines = result.stdout.split("next:")[1].strip().splitlines()
    assert len(next_lines) == 3 and all(line.strip().startswith("mailer ") for line in next_lines)

    env_file.unlink()
    assert init("--yes").exit_code == 0
    assert dotenv_values(env_file)["MAILER_SECRET_KEY"] != values["MAILER_SECRET_KEY"]


def test_init_never_overwrites_without_force(mailer_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("MAILER_SECRET_KEY=the-key-links-were-signed-with\n")

    refused = init("--yes")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: .env already exists") and "--force" in refused.stderr
    assert env_file.read_text() == "MAILER_SECRET_KEY=the-key-links-were-signed-with\n"

    replaced = init("--yes", "--force")
    assert replaced.exit_code == 0, replaced.output
    assert "the-key-links-were-signed-with" not in env_file.read_text()
    assert mode(env_file) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".env")] == [".env"]


def test_force_writes_through_a_symlinked_env_to_its_target(mailer_env, tmp_path):
    """The deploy links /var/lib/mailer/.env to /etc/mailer/mailer.env (issue 19, item 17)."""
    etc = tmp_path / "etc-mailer"
    etc.mkdir()
    target = etc / "mailer.env"
    target.write_text("MAILER_SECRET_KEY=the-deploys-old-key-0123456789\n")
    os.chmod(target, 0o640)
    if os.geteuid() == 0:  # as root, as the deploy's operator: a file owned by someone else
        os.chown(target, 1, 1)
    owner = (target.stat().st_uid, target.stat().st_gid)
    link = tmp_path / ".env"
    link.symlink_to(target)

    result = init("--yes", "--force")

    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == target.resolve()  # the link survives
    written = dotenv_values(target)["MAILER_SECRET_KEY"]
    assert written != "the-deploys-old-key-0123456789" and secret_key_problem(written) is None
    assert mode(target) == 0o640  # the deploy's mode, not a fresh 0600
    assert (target.stat().st_uid, target.stat().st_gid) == owner
    assert f"wrote {target.resolve()} (through the link .env, mode 0640)" in result.stdout
    assert sorted(p.name for p in etc.iterdir()) == ["mailer.env"]  # no temporary file left


def test_force_through_a_link_to_a_missing_folder_is_one_line(mailer_env, tmp_path):
    link = tmp_path / ".env"
    link.symlink_to(tmp_path / "no-such-folder" / "mailer.env")

    result = init("--yes", "--force")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write") and len(result.stderr.splitlines()) == 1
    assert link.is_symlink() and not (tmp_path / "no-such-folder").exists()


@pytest.mark.parametrize("args, named", [
    (("--from", "nobody"), "--from"),
    (("--from", "Evil <x@example.org>\nMAILER_SECRET_KEY=known"), "--from"),
    (("--base-url", "ftp://example.org"), "--base-url"),
    # a .env that MAILER_BASE_URL's own check would then refuse to load
    (("--base-url", "https://twir.example.org/?utm=x"), "--base-url"),
    (("--base-url", "https://user:pw@twir.example.org"), "--base-url"),
    (("--transport", "pigeon"), "--transport"),
])
def test_init_refuses_a_bad_value_in_one_line_and_writes_nothing(mailer_env, tmp_path, args,
                                                                  named):
    result = init(*args, "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {named}") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / ".env").exists()


def test_a_quoted_sender_reads_back_exactly(mailer_env, tmp_path):
    sender = 'O\'Brien "TWiR" <ob@example.org>'
    assert init("--from", sender, "--yes").exit_code == 0
    assert dotenv_values(tmp_path / ".env")["MAILER_FROM"] == sender


@pytest.mark.slow
def test_init_asks_on_a_terminal(mailer_env, tmp_path):
    """A real pseudo-terminal: init asks for the values not given as flags."""
    main, child = pty.openpty()
    process = subprocess.Popen([MAILER, "init", "--transport", "outbox"], stdin=child,
                               stdout=child, stderr=child, cwd=tmp_path,
                               env={**os.environ, **mailer_env, "TERM": "dumb"})
    os.close(child)
    os.write(main, b"Ann's Weekly <ann@example.org>\nhttps://news.example.org\n")
    output = _read_until_exit(main, process)

    assert process.returncode == 0, output
    assert "Sender (From)" in output and "Public URL of the web app" in output
    assert "Transport" not in output  # given as a flag: not asked
    values = dotenv_values(tmp_path / ".env")
    assert values["MAILER_FROM"] == "Ann's Weekly <ann@example.org>"
    assert values["MAILER_BASE_URL"] == "https://news.example.org"
    assert values["MAILER_TRANSPORT"] == "outbox"


def _read_until_exit(fd: int, process: subprocess.Popen, timeout: float = 60) -> str:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            process.kill()
            break
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=30)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_a_first_run_needs_nothing_but_init(mailer_env, tmp_path):
    """No MAILER_* settings at all: init, then the three commands it prints, send the issue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}

    def mailer(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([MAILER, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    refused = mailer("send", "--issue", "644", "--yes")
    assert refused.returncode == 2 and "mailer init" in refused.stderr
    assert mailer("init").returncode == 0  # no terminal: the defaults, nothing asked
    for step in (("db", "upgrade"), ("subscribers", "add", "you@example.org", "--confirmed"),
                 ("send", "--issue", "644", "--yes")):
        done = mailer(*step)
        assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1
