"""deploy/Caddyfile in front of the real `mailer serve`: no request is lost to keep-alive races.

A reverse proxy keeps idle connections to the app open to reuse them. When the app closes an idle
connection at the same moment the proxy sends the next request on it, the proxy answers 502. It
happens when the proxy keeps idle connections longer than the app: the proxy must let them go first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mailer.config import Settings
from tests.plugins.processes import free_port, stop_process
from tests.plugins.web_peer import _wait_until_healthy

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DURATION = re.compile(r"^\s*keepalive\s+(\d+(?:\.\d+)?)(ms|s|m)\s*$", re.MULTILINE)


def _seconds(amount: str, unit: str) -> float:
    return float(amount) * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _proxy_keepalive(caddyfile: str) -> float | None:
    match = DURATION.search(caddyfile)
    return _seconds(*match.groups()) if match else None


def test_the_proxy_lets_idle_connections_go_before_the_app_does() -> None:
    """Caddy's default keeps idle upstream connections 2 minutes, far past the app's 5 s."""
    app_keep_alive = Settings.model_fields["http_keep_alive_timeout"].default
    proxy_keep_alive = _proxy_keepalive((DEPLOY / "Caddyfile").read_text())
    assert proxy_keep_alive is not None, "deploy/Caddyfile sets no upstream keepalive"
    # A second of margin: the two clocks start at slightly different moments.
    assert proxy_keep_alive <= app_keep_alive - 1.0


def _local_caddyfile(app_port: int, proxy_port: int) -> str:
    """The deploy Caddyfile on plain HTTP at a loopback port, its proxy settings unchanged."""
    text = (DEPLOY / "Caddyfile").read_text()
    text = text.replace("{\n", "{\n\tadmin off\n\tauto_https off\n", 1)
    text, sites = re.subn(r"^newsletter\.example\.org \{", f"http://127.0.0.1:{proxy_port} {{",
                          text, flags=re.MULTILINE)
    text, upstreams = re.subn(r"reverse_proxy 127\.0\.0\.1:8000\b",
                              f"reverse_proxy 127.0.0.1:{app_port}", text)
    assert sites == 1 and upstreams == 1, "the Caddyfile's site or upstream moved"
    return text


def _wait_for_port(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"caddy did not answer:\n{log.read_text(errors='replace')}")


@pytest.mark.slow
@pytest.mark.peer
def test_posts_through_the_deploy_caddyfile_never_get_a_502(mailer_env, tmp_path: Path) -> None:
    """Idle gaps just around the app's keep-alive (5 s) are where the 502s were: 1 POST in 16."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian package: .ci/run installs it)")
    app_port, proxy_port = free_port(), free_port()
    serve_log, caddy_log = tmp_path / "serve.log", tmp_path / "caddy.log"
    env = {**os.environ, **mailer_env, "MAILER_TRUSTED_PROXIES": "127.0.0.1/32"}
    with serve_log.open("wb") as log:
        serve = subprocess.Popen(
            [str(Path(sys.executable).with_name("mailer")), "serve", "--port", str(app_port)],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    config = tmp_path / "Caddyfile"
    config.write_text(_local_caddyfile(app_port, proxy_port))
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with caddy_log.open("wb") as log:
        proxy = subprocess.Popen([caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
                                 env={**os.environ, **home}, cwd=tmp_path, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(serve, f"http://127.0.0.1:{app_port}", serve_log)
        _wait_for_port(f"http://127.0.0.1:{proxy_port}/healthz", proxy, caddy_log)
        keep_alive = Settings.model_fields["http_keep_alive_timeout"].default
        gaps = [keep_alive - 0.004 + 0.001 * step for step in range(8)]
        statuses = []
        with httpx.Client(base_url=f"http://127.0.0.1:{proxy_port}", timeout=10) as client:
            for gap in gaps:
                response = client.post("/webhooks/ses", content=b"{}",
                                       headers={"content-type": "application/json"})
                statuses.append(response.status_code)
                time.sleep(gap)
            statuses.append(client.get("/healthz").status_code)
    finally:
        stop_process(proxy)
        stop_process(serve)
    assert 502 not in statuses, f"{statuses}\n{caddy_log.read_text(errors='replace')[-2000:]}"
    assert statuses[-1] == 200
