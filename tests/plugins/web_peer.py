"""pytest plugin: the real web app under uvicorn (``mailer serve``) in a subprocess.

``web_server`` yields the base URL of a server that uses the test's settings (``mailer_env``: its
private SQLite file and outbox). ``MAILER_BASE_URL`` is set to that URL, so the links in the mail
it sends lead back to it. Extra settings: override the ``web_server_env`` fixture in a test
module, or call ``web_server_factory(extra_env)`` for a second server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.plugins.processes import free_port, stop_process

STARTUP_TIMEOUT = 30.0


def _wait_until_healthy(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mailer serve exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"mailer serve did not answer within {STARTUP_TIMEOUT}s:\n{log_path.read_text()}")


@pytest.fixture
def web_server_env() -> dict[str, str]:
    """Extra MAILER_* settings for ``web_server``; override this fixture to change them."""
    return {}


@pytest.fixture
def web_server_factory(
    mailer_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """Start ``mailer serve`` with the test's settings plus ``extra_env``; returns its base URL.

    Every server started is stopped when the test ends; its log is ``tmp_path/web-<port>.log``.
    """
    started: list[subprocess.Popen] = []
    mailer = Path(sys.executable).with_name("mailer")

    def start(extra_env: dict[str, str] | None = None) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **mailer_env, "MAILER_BASE_URL": url, **(extra_env or {})}
        log_path = tmp_path / f"web-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(mailer), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            )
        started.append(process)
        _wait_until_healthy(process, url, log_path)
        return url

    yield start
    for process in started:
        stop_process(process)


@pytest.fixture
def web_server(web_server_factory: Callable[..., str], web_server_env: dict[str, str]) -> str:
    """Base URL (``http://127.0.0.1:PORT``) of the real app serving this test's database."""
    return web_server_factory(web_server_env)
