"""A command that only reads never creates a database (issue 20, item 6).

Run in the wrong folder, `mailer stats` used to create an empty subscribers.db there and report
that no issue had been sent. Every read (stats in all its forms, subscribers list / count / show
/ export, doctor) now says which database it looked for; the commands that write (subscribers
add and import, send, db upgrade) still create one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.store.db import reset_engines

MAILER = str(Path(sys.executable).with_name("mailer"))

READS = {
    "stats": ["stats"],
    "stats --json": ["stats", "--json"],
    "stats --issue": ["stats", "--issue", "644"],
    "stats --issue --json": ["stats", "--issue", "644", "--json"],
    "stats --subscribers": ["stats", "--subscribers"],
    "stats --watch": ["stats", "--issue", "644", "--watch", "--every", "0.2"],
    "subscribers list": ["subscribers", "list"],
    "subscribers count": ["subscribers", "count"],
    "subscribers show": ["subscribers", "show", "ann@example.org"],
    "subscribers export": ["subscribers", "export"],
    "db current": ["db", "current"],
}


def run(*args: str):
    get_settings.cache_clear()
    reset_engines()
    return CliRunner().invoke(app, list(args))


def database(mailer_env: dict) -> Path:
    return Path(mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///"))


@pytest.mark.parametrize("command", READS.values(), ids=READS.keys())
def test_a_read_command_names_the_missing_database_and_creates_none(mailer_env, command):
    path = database(mailer_env)

    result = run(*command)

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no database at {path} (MAILER_DATABASE_URL); run mailer in the folder that "
        "has it, or `mailer db upgrade` to create one"]
    assert not path.exists()
    assert not list(path.parent.glob("subscribers.db*"))  # no -wal / -shm either


def test_the_default_database_is_looked_for_in_the_current_folder(tmp_path):
    """As an operator meets it: the installed command, no settings, the wrong folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}

    result = subprocess.run([MAILER, "stats"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no database at {tmp_path / 'subscribers.db'} (MAILER_DATABASE_URL); run mailer "
        "in the folder that has it, or `mailer db upgrade` to create one")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["subscribers", "add", "ann@example.org", "--confirmed"],
    ["db", "upgrade"],
    ["send", "--issue", "644", "--yes"],
], ids=["subscribers add", "db upgrade", "send"])
def test_a_write_command_still_creates_it(mailer_env, command):
    result = run(*command)

    assert result.exit_code == 0, result.output
    assert database(mailer_env).is_file()
    counted = run("subscribers", "count", "--json")
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.stdout)["total"] == (1 if command[0] == "subscribers" else 0)


def test_reads_work_once_the_database_is_there(mailer_env, engine):
    for command in READS.values():
        if "--issue" in command or "show" in command:
            continue  # these need an issue sent, or a reader
        result = run(*command)
        assert result.exit_code == 0, (command, result.output)
    assert "No issue has been sent yet." in run("stats").output


def test_doctor_reports_the_missing_database_as_a_check_and_creates_none(mailer_env,
                                                                         monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")  # no AWS: those checks fail, no network
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    path = database(mailer_env)

    result = run("doctor", "--json")

    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["database"]["status"] == "warn"
    assert f"no database at {path} (MAILER_DATABASE_URL)" in checks["database"]["message"]
    assert not path.exists()


def test_doctor_says_the_database_is_there(mailer_env, engine, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    result = run("doctor", "--json")

    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["database"]["status"] == "ok"


def test_doctor_live_names_the_missing_database_before_mailing_the_simulator(mailer_env,
                                                                             monkeypatch):
    # Nothing listens at the endpoint: probes sent would fail with another error.
    monkeypatch.setenv("MAILER_TRANSPORT", "ses")
    monkeypatch.setenv("MAILER_SES_ENDPOINT_URL", "http://127.0.0.1:9")
    path = database(mailer_env)

    result = run("doctor", "--live", "--wait", "1")

    assert result.exit_code == 1
    assert result.output.strip().startswith(f"error: no database at {path} (MAILER_DATABASE_URL)")
    assert not path.exists()
