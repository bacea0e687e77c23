"""deploy/ is read by the tools that will read it on a server: systemd and Caddy.

Both tools are Debian packages (`systemd`, `caddy`) that .ci/run installs; the tests skip when
they are absent. The units are the real files; only the install path of the `mailer` program is
pointed at a stand-in, because `systemd-analyze verify` refuses a unit whose program is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.config import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ["mailer-serve.service", "mailer-send.service", "mailer-send.timer",
         "mailer-events.service", "mailer-backup.service", "mailer-backup.timer"]
INSTALLED_PROGRAM = "/opt/mailer/bin/mailer"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package: .ci/run installs it)")
    return path


def _units_with_stand_in(tmp_path: Path) -> list[Path]:
    stand_in = tmp_path / "bin" / "mailer"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    copies = []
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        copy = tmp_path / name
        copy.write_text(text.replace(INSTALLED_PROGRAM, str(stand_in)))
        copies.append(copy)
    return copies


def _exec_lines(name: str) -> list[str]:
    return [line.split("=", 1)[1] for line in (DEPLOY / name).read_text().splitlines()
            if line.startswith("ExecStart=")]


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze")
    copies = _units_with_stand_in(tmp_path)
    result = subprocess.run([analyze, "verify", *map(str, copies)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    # verify exits 0 on unknown keys too, warning on stderr: a warning about our units fails.
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "mailer-" in line or str(tmp_path) in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_systemd_names_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a typo in a unit is reported."""
    analyze = _tool("systemd-analyze")
    copies = _units_with_stand_in(tmp_path)
    serve = copies[0]
    serve.write_text(serve.read_text().replace("Restart=on-failure", "Restart=on-fialure"))
    result = subprocess.run([analyze, "verify", str(serve)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert "mailer-serve.service" in result.stderr and "on-fialure" in result.stderr


def test_units_run_the_documented_commands() -> None:
    assert _exec_lines("mailer-serve.service") == [
        f"{INSTALLED_PROGRAM} serve --host 127.0.0.1 --port 8000 --workers 2"]
    assert _exec_lines("mailer-send.service") == [
        f"{INSTALLED_PROGRAM} send --issue latest --yes --not-before 24h"]
    assert _exec_lines("mailer-events.service") == [
        f"{INSTALLED_PROGRAM} events poll --queue-url ${{MAILER_SQS_QUEUE_URL}}"]
    assert _exec_lines("mailer-backup.service") == [
        f"{INSTALLED_PROGRAM} db backup /var/lib/mailer/backups"]
    timer = (DEPLOY / "mailer-send.timer").read_text()
    assert "OnCalendar=hourly" in timer and "Unit=mailer-send.service" in timer
    assert "Unit=mailer-backup.service" in (DEPLOY / "mailer-backup.timer").read_text()


def test_unit_commands_are_accepted_by_the_cli() -> None:
    """Each ExecStart's arguments parse: `--help` after them proves the options exist."""
    mailer = shutil.which("mailer", path=str(Path(sys.executable).parent))
    assert mailer, "the mailer program is not installed beside this Python"
    for name in ("mailer-serve.service", "mailer-send.service", "mailer-events.service",
                 "mailer-backup.service"):
        args = _exec_lines(name)[0].split()[1:]
        args = [arg.replace("${MAILER_SQS_QUEUE_URL}", "https://sqs.example/q") for arg in args]
        result = subprocess.run([mailer, *args, "--help"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_environment_file_is_valid_settings(tmp_path: Path, monkeypatch) -> None:
    """deploy/mailer.env loads as mailer's settings, behind the proxy the Caddyfile describes."""
    for key in list(os.environ):
        if key.startswith("MAILER_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    shutil.copy(DEPLOY / "mailer.env", tmp_path / ".env")
    settings = load_settings()
    assert settings.transport == "ses"
    assert settings.trusted_proxies == ["127.0.0.1/32", "::1/128"]
    assert settings.base_url.startswith("https://")
    assert settings.database_url == "sqlite:////var/lib/mailer/subscribers.db"
    assert settings.secret_is_insecure  # the template must be edited before `mailer serve` runs
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "reverse_proxy 127.0.0.1:8000" in caddyfile
    host = re.search(r"https://([^/\s]+)", settings.base_url).group(1)
    assert re.search(rf"^{re.escape(host)} \{{", caddyfile, re.MULTILINE)


def _validate_caddyfile(caddy: str, path: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config")}
    return subprocess.run([caddy, "validate", "--config", str(path), "--adapter", "caddyfile"],
                          capture_output=True, text=True, env=env, cwd=home, timeout=120)


def test_caddy_accepts_the_caddyfile(tmp_path: Path) -> None:
    caddy = _tool("caddy")
    result = _validate_caddyfile(caddy, DEPLOY / "Caddyfile", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddy_rejects_a_broken_caddyfile(tmp_path: Path) -> None:
    caddy = _tool("caddy")
    broken = tmp_path / "Caddyfile"
    broken.write_text((DEPLOY / "Caddyfile").read_text().replace("dial_timeout 5s",
                                                                 "dial_timeout soon"))
    result = _validate_caddyfile(caddy, broken, tmp_path)
    assert result.returncode != 0
