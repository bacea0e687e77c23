"""Outside text printed by the installed `mailer` command is shown as plain text (issue 9.6).

A bounce diagnostic is written by a remote mail server, a subject by whoever edits the issue, an
address by whoever fills in the form. Printed through Rich, "[/]" in such text was markup (a
MarkupError, exit 1) and ESC / C1 / bidi characters reached the terminal. Each case goes through
a real SQLite file and the real command in a subprocess; the output is read as bytes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mailer.domain import DeliveryStatus, SubscriberStatus, utcnow
from mailer.store.db import session
from mailer.store.models import Campaign, Delivery, Subscriber
from tests.conftest import FIXTURES, ROOT
from tests.mailer_cli import mailer as run_mailer

# What a hostile remote server or a careless editor can put in a line of text.
MARKUP = "[/] [bold red]loud[/bold red] [link=https://evil.example]x[/link]"
ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eexe.txt"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")
SHOWN_CONTROLS = ("\\x1b[2J", "\\x1b]0;pwned\\x07", "\\x9b31m", "\\u202eexe.txt")


def mailer(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run_mailer({**env, "COLUMNS": "250"}, *args, text=False)


def assert_shown_plainly(output: bytes, *expected: str) -> str:
    text = output.decode("utf-8")
    for raw in RAW_CONTROLS:
        assert raw not in text, f"{raw!r} reached the terminal: {text!r}"
    for part in expected:
        assert part in text, f"{part!r} not shown in {text!r}"
    return text


@pytest.fixture
def bounced(engine, mailer_env, tmp_path) -> dict:
    """A sent issue 644 whose one reader bounced with a hostile diagnostic, replayed through
    `mailer events replay` as SES would deliver it."""
    with session(engine) as db:
        campaign = Campaign(issue_number=644, subject="TWiR 644", transport="ses",
                            content_sha256="0" * 64)
        reader = Subscriber(email="gone@example.net", status=SubscriberStatus.ACTIVE,
                            confirmed_at=utcnow())
        db.add(campaign)
        db.add(reader)
        db.flush()
        db.add(Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=reader.email,
                        status=DeliveryStatus.SENT, provider_message_id="m-hostile"))
        db.commit()
    event = json.loads((FIXTURES / "ses" / "event-bounce.json").read_text())
    event["mail"]["messageId"] = "m-hostile"
    event["mail"]["destination"] = ["gone@example.net"]
    recipient = event["bounce"]["bouncedRecipients"][0]
    recipient["emailAddress"] = "gone@example.net"
    recipient["diagnosticCode"] = f"smtp; 550 {MARKUP} {ESCAPES}"
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event) + "\n")
    replayed = mailer(mailer_env, "events", "replay", str(events))
    assert replayed.returncode == 0, replayed.stderr
    return {"diagnostic": recipient["diagnosticCode"]}


def test_stats_issue_shows_a_hostile_bounce_diagnostic_as_text(mailer_env, bounced):
    result = mailer(mailer_env, "stats", "--issue", "644")
    assert result.returncode == 0, result.stderr.decode()
    assert_shown_plainly(result.stdout, "[/] [bold red]loud[/bold red]", "[link=https",
                         *SHOWN_CONTROLS)


def test_stats_json_keeps_the_diagnostic_exact_and_escapes_every_control(mailer_env, bounced):
    result = mailer(mailer_env, "stats", "--issue", "644", "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert_shown_plainly(result.stdout)
    reasons = json.loads(result.stdout)["bounce_reasons"]
    assert [r["diagnostic"] for r in reasons] == [bounced["diagnostic"]]


def test_an_error_quoting_the_users_input_is_one_plain_line(mailer_env, engine):
    # engine: `show` reads, and a read of a missing database stops before the address is read
    result = mailer(mailer_env, "subscribers", "show", f"{MARKUP}@x")
    assert result.returncode == 1
    text = assert_shown_plainly(result.stderr, "[/] [bold red]loud[/bold red]")
    assert text.startswith("error: ") and len(text.strip().splitlines()) == 1, text


def _hostile_issue(tmp_path: Path) -> Path:
    folder = tmp_path / "issues"
    folder.mkdir()
    source = (ROOT / "examples" / "2026-03-25-this-week-in-rust.md").read_text()
    # XML forbids C0 controls in the MJML, so the title carries markup, C1 and bidi only.
    title = "Title: This Week in Rust 644 [/] [bold red]loud \x9b2J \u202eexe.txt"
    (folder / "644.md").write_text(source.replace("Title: This Week in Rust 644", title, 1))
    return folder


def test_render_and_send_show_a_hostile_subject_as_text(mailer_env, tmp_path):
    env = {**mailer_env, "MAILER_ISSUES_DIR": str(_hostile_issue(tmp_path))}
    shown = ("644 [/] [bold red]loud \\x9b2J \\u202eexe.txt",)
    rendered = mailer(env, "render", "--issue", "644", "--out", str(tmp_path / "out"))
    assert rendered.returncode == 0, rendered.stderr.decode()
    assert_shown_plainly(rendered.stdout, *shown)
    assert mailer(env, "subscribers", "add", "reader@example.org", "--confirmed").returncode == 0
    planned = mailer(env, "send", "--issue", "644", "--dry-run")
    assert planned.returncode == 0, planned.stderr.decode()
    assert_shown_plainly(planned.stdout, *shown)


def test_events_replay_shows_a_hostile_file_and_event_type_as_text(mailer_env, tmp_path):
    # An event type mailer does not know is kept (as "other"), not reported: the hostile words
    # reach the terminal through the file's name, which the summary quotes.
    events = tmp_path / "events [bold red]loud \x1b[2J \x9b31m \u202eexe.jsonl"
    notification = {"eventType": f"Bounce {MARKUP} {ESCAPES}",
                    "mail": {"timestamp": "2026-11-18T10:00:00.000Z", "messageId": "m-1",
                             "destination": ["reader@example.org"], "tags": {}}}
    events.write_text(json.dumps(notification, ensure_ascii=False) + "\n")
    result = mailer(mailer_env, "events", "replay", str(events))
    assert result.returncode == 0, result.stderr
    text = assert_shown_plainly(result.stdout + result.stderr, "[bold red]loud", "\\x1b[2J")
    assert "Traceback" not in text and "MarkupError" not in text


def test_subscribers_show_prints_the_consent_record_plainly(mailer_env, tmp_path):
    # The import's file name is part of each reader's consent record.
    rows = tmp_path / "list [red] [bold]x \u202eexe.txt \x9b31m.csv"
    rows.write_text("email\nfine@example.org\n")
    assert mailer(mailer_env, "subscribers", "import", str(rows)).returncode == 0
    shown = mailer(mailer_env, "subscribers", "show", "fine@example.org")
    assert shown.returncode == 0, shown.stderr.decode()
    assert_shown_plainly(shown.stdout, "[red] [bold]x", "\\u202eexe.txt", "\\u009b31m")
    as_json = mailer(mailer_env, "subscribers", "show", "fine@example.org", "--json")
    assert_shown_plainly(as_json.stdout)
    assert json.loads(as_json.stdout)["changes"][0]["detail"]["file"] == rows.name


def test_preview_and_check_show_hostile_issue_text_plainly(mailer_env, tmp_path):
    """Issue 19.9: the render warnings and the findings quote the issue's links and images."""
    from typer.testing import CliRunner

    from mailer.cli import app

    source = tmp_path / "hostile.md"
    source.write_text("Title: This Week in Rust 904 \x9b2J \u202eexe\nNumber: 904\nDate: 2031-05-07\n\n"
                      "Hello.\n\n![](https://e.example/\x1b[2J\x9b31m\u202eexe.png)\n\n"
                      '<a href="javascript:x\x9b1m\u202e">words</a>\n', encoding="utf-8")
    runner = CliRunner()
    preview = runner.invoke(app, ["preview", "--source", str(source), "--out", str(tmp_path / "out")])
    assert preview.exit_code == 0, preview.output
    assert_shown_plainly(preview.stdout.encode(), "904 \\x9b2J \\u202eexe")
    assert_shown_plainly(preview.stderr.encode(), "(javascript:x\\x9b1m\\u202e)",
                         "image without alt text: https://e.example/\\x1b[2J\\x9b31m\\u202eexe.png")
    checked = runner.invoke(app, ["check", str(source)], env={"GITHUB_ACTIONS": "true"})
    assert checked.exit_code == 1, checked.output
    assert_shown_plainly(checked.stdout.encode(), "https://e.example/\\x1b[2J\\x9b31m\\u202eexe.png")
