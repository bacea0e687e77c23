"""`mailer serve` refuses to run in ways that would be unsafe or cannot work, with one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.config import DEV_SECRET_KEY, EXAMPLE_SECRET_KEY

MAILER = str(Path(sys.executable).with_name("mailer"))


def run_serve(mailer_env, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAILER, "serve", *args], env={**os.environ, **mailer_env, **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("secret", [EXAMPLE_SECRET_KEY, DEV_SECRET_KEY, "short"])
def test_serve_refuses_an_insecure_secret(mailer_env, tmp_path, secret):
    result = run_serve(mailer_env, "--port", "1", MAILER_SECRET_KEY=secret)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: MAILER_SECRET_KEY")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "subscribers.db").exists()  # refused before touching anything


def test_serve_says_so_when_the_port_is_taken(mailer_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(mailer_env, "--port", str(port))
    assert result.returncode != 0
    assert "error: cannot listen on 127.0.0.1" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr
