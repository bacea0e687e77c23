"""`mailer send --preview-to`: editors get each issue once when the cron first finds it; the
readers' send still waits for --not-before; previews never show in stats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.mailer_cli import mailer, outbox

pytestmark = pytest.mark.slow

EDITORS = "editors@example.org"


def write_issue(folder: Path, number: int, day: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{day}-this-week-in-rust.md").write_text(
        f"Title: This Week in Rust {number}\nNumber: {number}\nDate: {day}\n\n"
        f"Hello and welcome to issue {number}, written for mailer's preview test.\n")


@pytest.fixture
def env(mailer_env, tmp_path) -> dict:
    env = {**mailer_env, "MAILER_ISSUES_DIR": str(tmp_path / "issues")}
    for reader in ("ann@example.org", "bob@example.org"):
        assert mailer(env, "subscribers", "add", reader, "--confirmed").returncode == 0
    return env


def cron(env: dict, *extra: str) -> subprocess.CompletedProcess:
    result = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "24h", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_editors_get_one_preview_while_the_send_waits_for_not_before(env, tmp_path):
    write_issue(tmp_path / "issues", 680, "2099-01-07")  # not due for a long time
    first = cron(env, "--preview-to", EDITORS)
    assert f"preview of issue 680 sent to {EDITORS}" in first.stdout
    assert "not due yet" in first.stdout
    [preview] = outbox(env)
    assert preview["To"] == EDITORS
    assert preview["Subject"].startswith("[Preview] This Week in Rust 680")
    assert preview["X-Mailer-Preview"] == "issue 680"
    assert "issue 680, written for mailer's preview test" in " ".join(preview.get_body(("plain",)).get_content().split())

    second = cron(env, "--preview-to", EDITORS)
    assert "preview" not in second.stdout and "not due yet" in second.stdout
    assert len(outbox(env)) == 1

    stats = json.loads(mailer(env, "stats", "--json").stdout)
    assert stats["campaigns"] == []  # a preview is not a campaign and counts nowhere


def test_a_due_issue_is_previewed_then_sent_and_neither_repeats(env, tmp_path):
    write_issue(tmp_path / "issues", 681, "2026-01-07")
    first = cron({**env, "MAILER_PREVIEW_TO": EDITORS})  # the address can come from settings
    assert f"preview of issue 681 sent to {EDITORS}" in first.stdout
    assert [m["To"] for m in outbox(env)] == [EDITORS, "ann@example.org", "bob@example.org"]
    cron({**env, "MAILER_PREVIEW_TO": EDITORS})
    assert len(outbox(env)) == 3
    [campaign] = json.loads(mailer(env, "stats", "--json").stdout)["campaigns"]
    assert campaign["issue_number"] == 681 and campaign["sent"] == 2


def test_an_issue_already_sent_gets_no_late_preview(env, tmp_path):
    write_issue(tmp_path / "issues", 682, "2026-01-14")
    cron(env)
    assert len(outbox(env)) == 2
    later = cron(env, "--preview-to", EDITORS)
    assert "preview" not in later.stdout and len(outbox(env)) == 2


def test_a_bad_editors_address_is_one_line_and_sends_nothing(env, tmp_path):
    write_issue(tmp_path / "issues", 683, "2026-01-21")
    result = mailer(env, "send", "--issue", "latest", "--yes", "--preview-to", "editors-at-example")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:")
    assert outbox(env) == []


def test_a_preview_that_cannot_be_sent_is_tried_again_on_the_next_run(env, tmp_path):
    from tests.plugins.processes import free_port

    write_issue(tmp_path / "issues", 684, "2099-01-28")
    down = {**env, "MAILER_TRANSPORT": "smtp", "MAILER_SMTP_URL": f"smtp://127.0.0.1:{free_port()}",
            "MAILER_BASE_URL": "https://newsletter.example.org"}  # mail via smtp: https links
    failed = cron(down, "--preview-to", EDITORS)  # the send itself is not blocked by it
    assert "warning: preview of issue 684 to editors@example.org not sent" in failed.stdout
    assert "the next run tries again" in failed.stdout and "not due yet" in failed.stdout
    retried = cron(env, "--preview-to", EDITORS)
    assert "preview of issue 684 sent" in retried.stdout
    assert [m["To"] for m in outbox(env)] == [EDITORS]


def claim_release_cycle(url: str) -> list[bool]:
    from mailer.store import advance_copies
    from mailer.store.db import get_engine

    engine = get_engine(url)
    steps = [advance_copies.claim(engine, 690, EDITORS), advance_copies.claim(engine, 690, "other@example.org")]
    advance_copies.release(engine, 690)
    steps.append(advance_copies.claim(engine, 690, EDITORS))
    advance_copies.mark_sent(engine, 690, "id-1")
    record = advance_copies.get(engine, 690)
    steps.append(record.status == "sent" and record.address == EDITORS and record.sent_at is not None)
    return steps


def test_a_preview_is_claimed_once_released_on_failure_on_sqlite(mailer_env):
    assert claim_release_cycle(mailer_env["MAILER_DATABASE_URL"]) == [True, False, True, True]


@pytest.mark.postgres
def test_a_preview_is_claimed_once_released_on_failure_on_postgresql(pg_url):
    assert claim_release_cycle(pg_url) == [True, False, True, True]
