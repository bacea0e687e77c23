"""Issue 21 §1: the console's issue page says why a campaign's rows are unknown and whether
they settle on their own, as `mailer send` does: waiting for their SES event (they will
settle), no event since and none for later messages either (they will not: configure the Send
event type, run `mailer doctor`), or due to be re-sent by the next run."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime

import pytest

from tests.web_clients import ADMIN_ENV, PASSWORD, USER, admin_client, basic_auth
from tests.fakes import add_readers
from tests.send_runs import readers, run_send
from tests.send_runs import mailer_subprocess
from tests.fakes import ses_event

pytestmark = [pytest.mark.slow, pytest.mark.peer]

AUTH = basic_auth(USER, PASSWORD)


def why_unknown(monkeypatch, settle_after: str) -> str:
    """The issue page's explanation of campaign 1's unknown rows, tags stripped."""
    console = admin_client(monkeypatch, {**ADMIN_ENV, "MAILER_UNKNOWN_SETTLE_AFTER": settle_after})
    page = console.get("/admin/issues/644", headers=AUTH).text
    found = re.search(r'<span data-unknown-why="1">(.*?)</span>\s*</li>', page, re.S)
    assert found, page
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def test_the_issue_page_says_whether_unknown_rows_will_settle_and_what_to_fix(
        mailer_env, engine, fake_ses, monkeypatch, tmp_path):
    fake_ses.control(max_send_rate=100, lose_answers=1, keep=True)  # the first answer is lost
    add_readers(engine, *readers(6))
    env = {**os.environ, **mailer_env, **fake_ses.env}
    first = run_send(env, "--concurrency", "1")
    assert first.returncode == 4, first.stdout + first.stderr

    waiting = why_unknown(monkeypatch, "15m")
    assert re.search(r"1 row waits for their SES event until \d\d:\d\d:\d\d UTC", waiting)
    assert "they will settle" in waiting
    assert "mailer send --issue 644 --yes" in waiting

    time.sleep(1.2)  # past a 1 s window, and no event has arrived for any message
    unproven = why_unknown(monkeypatch, "1s")
    assert "1 row had no SES event" in unproven and "will not settle" in unproven
    assert "Configure the Send event type in the configuration set" in unproven
    assert "mailer doctor" in unproven

    # Events for the later messages only: the event path works, and SES never spoke of the
    # unknown one, so it is due to be re-sent.
    later = [m for m in fake_ses.messages() if m["destinations"] != ["reader0000@example.org"]]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(ses_event("Send", m, datetime.now(UTC))) + "\n"
                              for m in later))
    assert mailer_subprocess(env, "events", "replay", str(events)).returncode == 0
    due = why_unknown(monkeypatch, "1s")
    assert "1 row will be re-sent by the next mailer send --issue 644 --yes" in due
