"""A real local SMTP server (tests/peers/smtp_server.py) in a subprocess, and what it received."""

from __future__ import annotations

import contextlib
import mailbox
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


class SmtpPeer:
    def __init__(self, port: int, maildir: Path, tls_dir: Path | None) -> None:
        self.port, self.maildir, self.tls_dir = port, maildir, tls_dir

    def url(self, scheme: str = "smtp", user: str = "", query: str = "") -> str:
        return f"{scheme}://{user}{'@' if user else ''}127.0.0.1:{self.port}{query}"

    def messages(self) -> list:
        return list(mailbox.Maildir(self.maildir, create=False))

    def connections(self) -> int:
        log = self.maildir / "connections.log"
        return len(log.read_text().splitlines()) if log.exists() else 0


@contextlib.contextmanager
def smtp_server(tmp_path: Path, *args: str, tls: bool = False):
    maildir = tmp_path / "received"
    tls_dir = tmp_path / "tls" if tls else None
    command = [sys.executable, "-m", "tests.peers.smtp_server", "--port", "0",
               "--maildir", str(maildir), *args]
    if tls_dir:
        command += ["--tls-dir", str(tls_dir)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert "listening on" in line, f"smtp_server did not start: {line!r}"
        yield SmtpPeer(int(line.rsplit(":", 1)[1]), maildir, tls_dir)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
