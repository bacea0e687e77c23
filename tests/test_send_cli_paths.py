"""Issue 14's untested send paths, run as an operator runs them: `mailer send --again`,
`mailer worker` joining a send on PostgreSQL (and refusing when it should), readers SES
rejects for good, and `mailer send` end to end over SMTP."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import update

from mailer.domain import DeliveryStatus, utcnow
from mailer.store.db import get_engine
from mailer.store.models import Campaign
from tests.fakes import add_readers
from tests.mailer_cli import MAILER, mailer
from tests.send_runs import campaigns, outbox_messages
from tests.send_runs import ledger_rows, readers, run_send, start_send, wait_for_accepted

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


# -- --again -----------------------------------------------------------------------------------

def test_again_sends_a_finished_issue_once_more_as_a_new_campaign(mailer_env, engine):
    add_readers(engine, "ada@example.org", "brendan@example.org", "carol@example.org")
    first = mailer(mailer_env, "send", "--issue", "644", "--yes")
    assert first.returncode == 0, first.stderr

    again = mailer(mailer_env, "send", "--issue", "644", "--yes", "--again")

    assert again.returncode == 0, again.stderr
    assert "audience:  3 confirmed readers" in again.stdout
    assert "campaign 2 started" in again.stdout
    copies = [str(m["To"]) for m in outbox_messages(mailer_env)]
    assert sorted(copies) == sorted(["ada@example.org", "brendan@example.org",
                                     "carol@example.org"] * 2)
    assert [c.status for c in campaigns(engine)] == ["finished", "finished"]


def test_again_while_the_last_campaign_is_stopped_refuses_and_sends_nothing(mailer_env, engine):
    add_readers(engine, *readers(5))
    canary = mailer(mailer_env, "send", "--issue", "644", "--yes", "--limit", "2")
    assert canary.returncode == 0, canary.stderr
    assert [c.status for c in campaigns(engine)] == ["stopped"]

    again = mailer(mailer_env, "send", "--issue", "644", "--yes", "--again")

    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].startswith(
        "error: --again: campaign 1 of issue 644 is stopped, not finished (3 readers still "
        "waiting)")
    assert "Traceback" not in again.stderr and "audience" not in again.stdout
    assert len(outbox_messages(mailer_env)) == 2 and len(campaigns(engine)) == 1

    resumed = mailer(mailer_env, "send", "--issue", "644", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert "audience:  3 readers still waiting" in resumed.stdout  # the plan matches the send
    assert sorted(str(m["To"]) for m in outbox_messages(mailer_env)) == readers(5)


# -- readers rejected for good -----------------------------------------------------------------

@pytest.mark.peer
def test_permanently_rejected_readers_exit_1_with_one_failed_line_each(
        mailer_env, engine, fake_ses):
    fake_ses.control(max_send_rate=100, reject=["reader0003@*", "reader0007@*"])
    add_readers(engine, *readers(10))
    env = {**os.environ, **mailer_env, **fake_ses.env}

    result = run_send(env)

    assert result.returncode == 1
    failed = [line.strip() for line in result.stderr.splitlines() if "failed:" in line]
    assert failed == [
        "failed: reader0003@example.org: rejected: SES MessageRejected: Address rejected: "
        "reader0003@example.org",
        "failed: reader0007@example.org: rejected: SES MessageRejected: Address rejected: "
        "reader0007@example.org"]
    assert "campaign 1: 8 sent, 2 failed" in result.stdout
    assert fake_ses.stats()["accepted"] == 8


# -- SMTP end to end ---------------------------------------------------------------------------

@pytest.mark.peer
def test_send_over_smtp_end_to_end(mailer_env, engine, tmp_path):
    from tests.smtp_peer import smtp_server

    add_readers(engine, *readers(12))
    with smtp_server(tmp_path, "--lose-answer", "reader0005@*") as peer:
        env = {**mailer_env, "MAILER_TRANSPORT": "smtp", "MAILER_SMTP_URL": peer.url(),
               "MAILER_ISSUES_DIR": str(ROOT / "examples"),
               "MAILER_BASE_URL": "https://newsletter.example.org"}  # mail via smtp: https links
        result = mailer(env, "send", "--issue", "644", "--yes", "--concurrency", "3")

        assert result.returncode == 4, result.stderr  # a row left unknown: not finished
        assert "transport: smtp" in result.stdout and "campaign 1 finished" in result.stdout
        received = sorted(str(m["To"]) for m in peer.messages())
        assert received == readers(12)  # everyone once, the reader whose answer was lost too
        rows = ledger_rows(engine)
        assert rows["reader0005@example.org"].status == DeliveryStatus.UNKNOWN
        assert "1 delivery is unknown" in result.stderr
        assert "the smtp transport sends no events" in result.stderr
        assert sum(row.status == DeliveryStatus.SENT for row in rows.values()) == 11
        assert all(m["List-Unsubscribe"] and m["X-Mailer-Delivery"] for m in peer.messages())

        again = mailer(env, "send", "--issue", "644", "--yes")
        assert again.returncode == 4 and "already sent" in again.stdout  # still unknown
        assert len(peer.messages()) == 12


# -- mailer worker on PostgreSQL ---------------------------------------------------------------

@pytest.fixture
def pg_env(mailer_env, pg_url, monkeypatch):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    return {**mailer_env, "MAILER_DATABASE_URL": pg_url}


def set_status(engine, campaign_id: int, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(Campaign.__table__).where(Campaign.__table__.c.id == campaign_id)
                           .values(status=status))


@pytest.mark.postgres
@pytest.mark.peer
def test_workers_in_other_processes_join_a_send_on_postgres(pg_env, pg_url, fake_ses):
    engine = get_engine(pg_url)
    everyone = readers(600)
    add_readers(engine, *everyone)
    # ~10 s, and each process leases at most ~100 rows ahead: rows are left for late joiners
    fake_ses.control(latency=0.05, max_send_rate=60)
    env = {**os.environ, **pg_env, **fake_ses.env}

    sender = start_send(env, "--concurrency", "2")
    wait_for_accepted(fake_ses, 10, sender)
    workers = [subprocess.Popen([MAILER, "worker", "--concurrency", "3"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    out, err = sender.communicate(timeout=240)
    joined = [worker.communicate(timeout=120) for worker in workers]

    assert sender.returncode == 0, err
    assert [w.returncode for w in workers] == [0, 0], joined
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in everyone}
    rows = ledger_rows(engine)
    assert {row.status for row in rows.values()} == {DeliveryStatus.SENT}
    assert len({row.claimed_by for row in rows.values()}) == 3, joined  # each took a share
    assert [c.status for c in campaigns(engine)] == ["finished"]


@pytest.mark.postgres
def test_worker_error_paths_on_postgres(pg_env, pg_url, tmp_path):
    engine = get_engine(pg_url)
    add_readers(engine, *readers(4))
    issues = tmp_path / "issues"
    shutil.copytree(ROOT / "examples", issues)
    env = {**pg_env, "MAILER_ISSUES_DIR": str(issues)}

    nothing = mailer(env, "worker")
    assert nothing.returncode == 0 and "no campaign is being sent" in nothing.stdout

    missing = mailer(env, "worker", "--campaign", "99")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: there is no campaign 99"

    canary = mailer(env, "send", "--issue", "644", "--yes", "--limit", "1")
    assert canary.returncode == 0, canary.stderr
    stopped = mailer(env, "worker", "--campaign", "1")
    assert stopped.returncode == 1
    assert "campaign 1 is stopped, not being sent; resume it with `mailer send --issue 644`" \
        in stopped.stderr

    set_status(engine, 1, "sending")
    (issue_file,) = issues.glob("*.md")
    issue_file.write_text(issue_file.read_text() + "\nA correction added after the start.\n")
    changed = mailer(env, "worker")
    assert changed.returncode == 1 and "Traceback" not in changed.stderr
    assert "renders differently here than where campaign 1 started" in changed.stderr
    assert sum(row.status == DeliveryStatus.SENT for row in ledger_rows(engine).values()) == 1
    assert len(outbox_messages(env)) == 1  # the worker sent nothing

    with engine.begin() as connection:  # another issue is being sent at the same time
        connection.execute(Campaign.__table__.insert().values(
            issue_number=645, subject="TWiR 645", transport="outbox", content_sha256="0" * 64,
            status="sending", created_at=utcnow()))
    several = mailer(env, "worker")
    assert several.returncode == 1
    assert "several campaigns are being sent (1, 2); pick one with --campaign" in several.stderr
