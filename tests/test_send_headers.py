"""Security issue 19, item 6: what an issue puts in the headers never loses the issue.

An AT Protocol record's title may hold a line break, or be one word longer than a mail line.
`mailer send` (in process, the hourly timer's command) reads such records from a real local PDS
(tests/peers/fake_pds.py) and mails them to the outbox with a valid one-line Subject; a
second run says the issue was sent. A message the provider refuses for every reader (the fake
SES peer) stops the send with everyone still queued, and the next run sends it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.domain import CampaignStatus, DeliveryStatus
from mailer.store.models import Campaign, Delivery
from tests.mailer_cli import outbox
from tests.plugins.processes import free_port, stop_process
from tests.fakes import add_readers
from tests.source_peers import start_peer

pytestmark = [pytest.mark.peer]

DID = "did:plc:twirheadertests"
READERS = ("ada@example.org", "brendan@example.org", "carol@example.org")
LONG_TITLE = "ThisWeekInRust" + "_" * (1200 - len("ThisWeekInRust") - 3) + "652"


def record(title: str, number: int) -> dict:
    return {"$type": "site.standard.document", "site": "https://twir.example.org",
            "path": f"/blog/2026/04/01/this-week-in-rust-{number}/",
            "publishedAt": "2026-04-01T04:00:00.000Z", "title": title,
            "tags": ["This Week in Rust"],
            "textContent": f"Hello and welcome to issue {number} of This Week in Rust, a record "
                           "with an unusual title, written for mailer's header tests."}


@pytest.fixture
def pds_with(tmp_path, mailer_env, monkeypatch):
    """Start a PDS serving one record with ``title``; point the atproto source at it."""
    started = []

    def serve(title: str, number: int) -> None:
        root = tmp_path / "pds" / "site.standard.document"
        root.mkdir(parents=True)
        (root / "3m2aaaaaaaa72.json").write_text(json.dumps(record(title, number)))
        port = free_port()
        started.append(start_peer("tests.peers.fake_pds", "--did", DID, "--records",
                                  str(tmp_path / "pds"), "--port", str(port),
                                  "--log", str(tmp_path / "pds.log")))
        for name, value in {"MAILER_ISSUE_SOURCE": "atproto",
                            "MAILER_SOURCE_PDS_URL": f"http://127.0.0.1:{port}",
                            "MAILER_SOURCE_ATPROTO_REPO": DID,
                            "MAILER_SOURCE_CACHE_DIR": str(tmp_path / "cache"),
                            # the test's PDS is on loopback, which a source refuses by default
                            "MAILER_SOURCE_ALLOW_PRIVATE": "1"}.items():
            monkeypatch.setenv(name, value)

    yield serve
    for process in started:
        stop_process(process)


def send(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, ["send", "--issue", "latest", "--yes", *args])


def raw_headers(env: dict) -> list[bytes]:
    """The header lines of each outbox file, as written."""
    folder = Path(env["MAILER_OUTBOX_DIR"]) / "new"
    return [path.read_bytes().split(b"\n\n", 1)[0] for path in sorted(folder.iterdir())]


def campaign_and_rows(engine) -> tuple[Campaign, dict[str, str]]:
    with engine.connect() as connection:
        (campaign,) = connection.execute(select(Campaign.__table__)).mappings().all()
        rows = dict(connection.execute(
            select(Delivery.__table__.c.email, Delivery.__table__.c.status)).all())
    return Campaign.model_validate(dict(campaign)), rows


def assert_sent_once_with_subject(env: dict, engine, subject: str) -> None:
    result = send()
    assert result.exit_code == 0, result.output
    messages = outbox(env)
    assert sorted(m["To"] for m in messages) == sorted(READERS)
    assert {m["Subject"] for m in messages} == {subject}
    for head in raw_headers(env):
        assert max(len(line) for line in head.split(b"\n")) <= 998
        # exactly one Subject field, and nothing after it that is not its folded continuation
        assert len(re.findall(rb"^Subject:", head, re.MULTILINE)) == 1
        assert all(line[:1] in b" \t" or b":" in line for line in head.split(b"\n"))
    campaign, rows = campaign_and_rows(engine)
    assert campaign.status == CampaignStatus.FINISHED
    assert campaign.subject == (subject if len(subject) <= 500 else subject[:499] + "…")
    assert set(rows.values()) == {DeliveryStatus.SENT}
    again = send()
    assert again.exit_code == 0 and "already sent" in again.output
    assert len(outbox(env)) == len(READERS)


def test_a_title_with_a_line_break_goes_out_as_one_subject_line(mailer_env, engine, pds_with):
    add_readers(engine, *READERS)
    pds_with("This Week in Rust\r\nspecial\u2028edition 651", 651)

    assert_sent_once_with_subject(mailer_env, engine, "This Week in Rust special edition 651")


def test_a_1200_character_title_without_a_space_folds_into_a_valid_subject(
        mailer_env, engine, pds_with):
    add_readers(engine, *READERS)
    pds_with(LONG_TITLE, 652)

    assert_sent_once_with_subject(mailer_env, engine, LONG_TITLE)


# -- a message the provider refuses for every reader -------------------------------------------

def ses_send(fake_ses, monkeypatch, *args: str):
    for name, value in fake_ses.env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return CliRunner().invoke(app, ["send", "--issue", "644", "--yes", "--concurrency", "4",
                                    *args])


@pytest.mark.slow
def test_a_message_refused_for_every_reader_stops_with_everyone_queued_and_resumes(
        mailer_env, engine, fake_ses, monkeypatch):
    readers = [f"reader{n:02d}@example.org" for n in range(40)]
    add_readers(engine, *readers)
    fake_ses.control(reject=["*"])  # as SES refuses a message it cannot take from anyone

    first = ses_send(fake_ses, monkeypatch)

    assert first.exit_code == 1, first.output
    assert "Traceback" not in first.output
    [line] = [line for line in first.output.splitlines() if "refused" in line]
    assert "stopped with 40 readers still queued" in line and "Address rejected" in line
    campaign, rows = campaign_and_rows(engine)
    assert campaign.status == CampaignStatus.STOPPED
    assert set(rows.values()) == {DeliveryStatus.QUEUED}
    assert fake_ses.stats()["accepted"] == 0

    fake_ses.control(reject=[])  # the message was fixed
    second = ses_send(fake_ses, monkeypatch)

    assert second.exit_code == 0, second.output
    assert "already sent" not in second.output
    assert fake_ses.stats()["per_recipient"] == {address: 1 for address in readers}
    campaign, rows = campaign_and_rows(engine)
    assert campaign.status == CampaignStatus.FINISHED
    assert set(rows.values()) == {DeliveryStatus.SENT}


@pytest.mark.slow
def test_readers_the_provider_refuses_while_it_takes_others_still_fail_on_their_own(
        mailer_env, engine, fake_ses, monkeypatch):
    readers = [f"reader{n:02d}@example.org" for n in range(40)]
    add_readers(engine, *readers)
    refused = ["reader00@example.org", "reader01@example.org", "reader10@example.org",
               "reader25@example.org"]  # two of them before anything was accepted
    fake_ses.control(reject=refused)

    result = ses_send(fake_ses, monkeypatch)

    assert result.exit_code == 1, result.output  # failed readers
    campaign, rows = campaign_and_rows(engine)
    assert campaign.status == CampaignStatus.FINISHED
    assert sorted(a for a, status in rows.items() if status == DeliveryStatus.FAILED) == refused
    assert fake_ses.stats()["accepted"] == 36


def test_the_first_message_is_built_before_a_campaign_exists(mailer_env, engine, monkeypatch):
    add_readers(engine, *READERS)
    monkeypatch.setenv("MAILER_LIST_ID", "x" * 1200)  # a value no header line can hold

    result = send()

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: issue 644 cannot be sent: its message cannot be built (refusing header "
        "List-Id: longer than 998 octets with no space to fold at); no campaign was started"]
    with engine.connect() as connection:
        assert connection.execute(select(Campaign.__table__)).all() == []
    assert outbox(mailer_env) == []
