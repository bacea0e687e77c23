"""`mailer doctor --live` end to end: the installed command sends to the SES mailbox simulator on
fake_ses, fake_ses writes the events the simulator would publish, and `mailer events replay` in
another process brings them into the database the doctor is watching (issue 11, section 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugins.aws_account import BREAKAGES

pytestmark = pytest.mark.peer

MAILER = str(Path(sys.executable).parent / "mailer")
SIMULATOR = "simulator.amazonses.com"
EXPECTED = [("delivery", "success"), ("bounce", "bounce"), ("delivery", "complaint"),
            ("complaint", "complaint"), ("bounce", "suppressionlist"), ("delivery", "ooto")]


@pytest.fixture
def live_env(fake_ses, mailer_env, engine, tmp_path) -> dict:
    # engine: --live waits for events in mailer's database, which must be there already
    events = tmp_path / "simulator-events.jsonl"
    fake_ses.control(simulator_events=str(events), keep=True)
    return {**os.environ, **mailer_env, **fake_ses.env, "MAILER_SES_CONFIGURATION_SET": "twir",
            "COLUMNS": "200", "EVENTS_FILE": str(events)}


def mailer(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MAILER, *args], env=env, capture_output=True, text=True, timeout=120)


def doctor_while_events_are_replayed(env: dict, *args: str, lines: int) -> tuple:
    """Start the doctor, wait for fake_ses's event file to hold ``lines`` events, replay it
    from another process, and return the doctor's result with the replay's."""
    doctor = subprocess.Popen([MAILER, "doctor", "--live", *args], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events = Path(env["EVENTS_FILE"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and doctor.poll() is None:
        if events.exists() and len(events.read_text().splitlines()) >= lines:
            break
        time.sleep(0.1)
    replay = mailer(env, "events", "replay", str(events))
    out, err = doctor.communicate(timeout=120)
    return doctor.returncode, out, err, replay


def test_every_simulator_event_arrives_and_is_ok(live_env, fake_ses):
    # a simulator address that is also on the list must never be suppressed by its events
    assert mailer(live_env, "subscribers", "add", f"bounce@{SIMULATOR}", "--confirmed"
                  ).returncode == 0
    code, out, err, replay = doctor_while_events_are_replayed(
        live_env, "--wait", "60", "--late-after", "60", lines=len(EXPECTED))
    assert replay.returncode == 0, replay.stderr
    assert code == 0, out + err
    for kind, mailbox in EXPECTED:
        assert any(line.startswith("ok") and f"{kind} for {mailbox}@{SIMULATOR}" in line
                   for line in out.splitlines()), (kind, mailbox, out)
    sent = fake_ses.messages()
    assert sorted(m["destinations"][0] for m in sent) == sorted(
        f"{m}@{SIMULATOR}" for m in ("success", "bounce", "complaint", "suppressionlist", "ooto"))
    assert {m["configuration_set"] for m in sent} == {"twir"}
    shown = json.loads(mailer(live_env, "subscribers", "show", f"bounce@{SIMULATOR}",
                              "--json").stdout)
    assert shown["status"] == "active"
    stats = json.loads(mailer(live_env, "stats", "--json").stdout)
    assert stats["campaigns"] == [] and stats["issues"] == []  # the simulator counts nowhere


def test_a_missing_event_fails_with_a_cause_and_slow_ones_are_late(live_env, fake_ses):
    fake_ses.control(simulator_drop=["Complaint"])  # the destination does not publish them
    code, out, err, replay = doctor_while_events_are_replayed(
        live_env, "--wait", "8", "--late-after", "0", lines=len(EXPECTED) - 1)
    assert replay.returncode == 0, replay.stderr
    assert code == 1, out + err
    lines = out.splitlines()
    assert any(line.startswith("missing") and f"complaint for complaint@{SIMULATOR}" in line
               for line in lines), out
    assert any(line.startswith("late") and f"delivery for success@{SIMULATOR}" in line
               for line in lines), out
    assert lines[-1].startswith("likeliest cause: "), out
    assert "Traceback" not in err


def test_live_needs_the_ses_transport(mailer_env):
    env = {**os.environ, **mailer_env, "MAILER_TRANSPORT": "outbox"}
    result = mailer(env, "doctor", "--live", "--wait", "1")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: --live sends through SES, but MAILER_TRANSPORT is "
                                     "'outbox': set MAILER_TRANSPORT=ses")


# -- the likeliest cause, read from a real (moto_server) SES + SNS set-up ------------------------

CAUSES = {
    "no event destination": "no SNS event destination",
    "deliveries not published": "no SNS event destination",
    "not subscribed": "not subscribed to the web hook",
    "raw delivery on": "raw delivery is on",
    "topic not allowed": "wrong topic ARN",
}


@pytest.mark.parametrize("breakage", list(CAUSES))
def test_the_likeliest_cause_names_the_broken_link(aws, monkeypatch, breakage):
    from mailer.config import load_settings
    from mailer.doctor import run_checks
    from mailer.doctor.live import NO_VISIBLE_CAUSE, likeliest_cause

    assert likeliest_cause(run_checks(load_settings())) == NO_VISIBLE_CAUSE
    damage, env, _, _ = BREAKAGES[breakage]
    damage(aws)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert CAUSES[breakage] in likeliest_cause(run_checks(load_settings()))


def test_a_simulator_reader_in_a_campaign_never_counts_nor_is_suppressed(engine, mailer_env,
                                                                         tmp_path):
    from mailer.domain import DeliveryStatus, SubscriberStatus, utcnow
    from mailer.store.db import session
    from mailer.store.models import Campaign, Delivery, Subscriber
    from tests.conftest import FIXTURES

    simulator = f"bounce@{SIMULATOR}"
    with session(engine) as db:
        campaign = Campaign(issue_number=644, subject="TWiR 644", transport="ses",
                            content_sha256="0" * 64)
        db.add(campaign)
        db.flush()
        for n, address in enumerate(("reader@example.net", simulator)):
            reader = Subscriber(email=address, status=SubscriberStatus.ACTIVE,
                                confirmed_at=utcnow())
            db.add(reader)
            db.flush()
            db.add(Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=address,
                            status=DeliveryStatus.SENT, provider_message_id=f"m-{n}",
                            sent_at=utcnow()))
        db.commit()
    bounce = json.loads((FIXTURES / "ses" / "event-bounce.json").read_text())
    bounce["mail"].update(messageId="m-1", destination=[simulator])
    bounce["bounce"]["bouncedRecipients"][0]["emailAddress"] = simulator
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(bounce) + "\n")
    env = {**os.environ, **mailer_env}
    assert mailer(env, "events", "replay", str(events)).returncode == 0
    detail = json.loads(mailer(env, "stats", "--issue", "644", "--json").stdout)
    summary = detail["summary"]
    assert (summary["recipients"], summary["sent"], summary["bounced"]) == (1, 1, 0)
    assert detail["bounce_reasons"] == []
    assert [d["domain"] for d in detail["domains"]] == ["example.net"]
    shown = json.loads(mailer(env, "subscribers", "show", simulator, "--json").stdout)
    assert shown["status"] == "active"
