"""`mailer doctor` against moto_server: a complete SES + SNS set-up passes, each missing piece is
named in plain words."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.mailer_cli import mailer
from tests.plugins.aws_account import BREAKAGES

pytestmark = pytest.mark.peer


def _checks(monkeypatch, **env: str) -> dict[str, tuple[str, str]]:
    from mailer.config import load_settings
    from mailer.doctor import run_checks

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {c.name: (c.status, c.message) for c in run_checks(load_settings())}


def test_a_complete_setup_passes_every_check(aws, monkeypatch):
    checks = _checks(monkeypatch)
    assert {name: status for name, (status, _) in checks.items()} == {
        "web app secret": "ok", "operator console": "ok", "transport": "ok", "web hook URL": "ok", "AWS access": "ok",
        "sender identity": "ok", "DKIM": "ok", "configuration set": "ok",
        "event destination": "ok", "SNS topic": "ok", "web hook subscription": "ok",
        "topic allow-list": "ok",
        "account": "warn",  # moto has no GetAccount: unknown, not a failure
    }
    assert "example.org is verified" in checks["sender identity"][1]
    assert "enforcement status unknown" in checks["account"][1]
    assert "200 per 24 h" in checks["account"][1]  # moto's classic GetSendQuota still answers


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_missing_piece_is_named(aws, monkeypatch, breakage):
    damage, env, name, words = BREAKAGES[breakage]
    damage(aws)
    checks = _checks(monkeypatch, **env)
    status, message = checks[name]
    assert status == "FAIL", (name, message)
    assert words in message
    failed = [n for n, (s, _) in checks.items() if s == "FAIL"]
    # the other checks keep their verdict: one breakage, one (or two closely tied) FAILs
    assert len(failed) <= 3, failed


def test_without_credentials_it_stops_at_access(aws, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    checks = _checks(monkeypatch)
    assert checks["AWS access"][0] == "FAIL" and "no AWS credentials" in checks["AWS access"][1]
    assert "sender identity" not in checks


def test_an_unreachable_endpoint_is_one_failure(aws, monkeypatch):
    checks = _checks(monkeypatch, MAILER_SES_ENDPOINT_URL="http://127.0.0.1:9")
    assert checks["AWS access"][0] == "FAIL" and "cannot reach SES" in checks["AWS access"][1]


def _doctor(*args: str) -> subprocess.CompletedProcess:
    return mailer({}, "doctor", *args)  # the settings are the aws fixture's environment


def test_the_command_exits_zero_when_nothing_fails(aws):
    result = _doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok") and "DKIM" in line for line in lines)
    assert any(line.startswith("warn") and "account" in line for line in lines)
    assert "0 failed" in result.stdout


def test_the_command_exits_non_zero_and_says_what_is_missing(aws):
    aws.sns.set_subscription_attributes(SubscriptionArn=aws.subscription,
                                        AttributeName="RawMessageDelivery", AttributeValue="true")
    result = _doctor()
    assert result.returncode == 1
    assert "FAIL  web hook subscription" in result.stdout and "Traceback" not in result.stderr
    data = json.loads(_doctor("--json").stdout)
    assert data["ok"] is False
    assert [c["name"] for c in data["checks"] if c["status"] == "FAIL"] == ["web hook subscription"]


# -- the account's standing, from GetAccount on the project's own SES endpoint ----------------

ACCOUNT_STATES = {
    "healthy": ({}, "ok", "enforcement status HEALTHY; quota 500 per 24 h, 20 per second, "
                          "3 sent in the last 24 h"),
    "paused": ({"paused": True}, "FAIL", "sending is paused for this account"),
    "shut down": ({"enforcement_status": "SHUTDOWN"}, "FAIL", "the account is shut down"),
    "probation": ({"enforcement_status": "PROBATION"}, "warn", "the account is on probation"),
    "sandbox": ({"production_access": False}, "warn", "the account is in the SES sandbox"),
    # the worse standing wins: a paused account in the sandbox is a FAIL, not a warning
    "paused in the sandbox": ({"paused": True, "production_access": False}, "FAIL",
                              "sending is paused"),
}


@pytest.mark.parametrize("state", list(ACCOUNT_STATES))
def test_account_standing_from_get_account(fake_ses, mailer_env, monkeypatch, state):
    from mailer.config import load_settings
    from mailer.doctor.account import check_account
    from mailer.transports.ses_reads import make_clients

    faults, status, words = ACCOUNT_STATES[state]
    fake_ses.control(daily_quota=500, max_send_rate=20, sent_last_24h=3, **faults)
    for name, value in fake_ses.env.items():
        monkeypatch.setenv(name, value)
    check = check_account(make_clients(load_settings()))
    assert (check.status, check.name) == (status, "account"), check.message
    assert words in check.message
