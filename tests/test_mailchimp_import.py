"""`mailer subscribers import-mailchimp`: a Mailchimp audience export comes over with its
consent, unsubscribe and bounce history, on exports written here in Mailchimp's layout."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from mailer.cli import app
from mailer.domain import utcnow
from mailer.store.models import Subscriber
from tests.mailchimp_export import csv_bytes, file_name, member, write_dir, write_zip
from tests.mailer_cli import mailer as run_mailer
from tests.subscriber_rows import changes, subscribers


@pytest.fixture
def run(mailer_env):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["subscribers", *args])

    return invoke


def the_export() -> dict[str, bytes]:
    """Four files with what real exports hold: a BOM (older exports), CRLF, quoted commas and
    quotes, a custom merge field, empty times, mixed-case addresses, one address in two files."""
    return {
        file_name("subscribed"): csv_bytes("subscribed", [
            member(1, email="Ann.Lee@Example.ORG", **{"Last Name": "Lee, Jr.",
                                                      "MMERGE5": 'likes "async"'}),
            member(2, OPTIN_TIME="", OPTIN_IP="", CONFIRM_TIME="", CONFIRM_IP=""),  # by hand
            member(3, email="twice@example.org"),
        ], bom=True),
        file_name("unsubscribed"): csv_bytes("unsubscribed", [
            member(4, UNSUB_TIME="2025-06-11 09:30:00", UNSUB_REASON="OTHER",
                   UNSUB_REASON_OTHER="too many mails, sorry", UNSUB_CAMPAIGN_ID="c0ffee1"),
        ]),
        file_name("cleaned"): csv_bytes("cleaned", [
            member(5, CLEAN_TIME="", CLEAN_CAMPAIGN_TITLE="TWiR 600"),
            member(6, email="twice@example.org", CLEAN_TIME="2024-10-10 10:10:10"),
        ]),
        file_name("nonsubscribed"): csv_bytes("nonsubscribed", [member(7)]),
    }


def add_existing(engine, **states: str) -> None:
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(insert(Subscriber.__table__), [
            dict(email=email, status=status, created_at=now, updated_at=now, source="web")
            for email, status in states.items()])


def test_each_status_maps_with_its_consent_record(run, engine, tmp_path):
    export = write_zip(tmp_path / "audience.zip", the_export())
    result = run("import-mailchimp", str(export))
    assert result.exit_code == 0, result.output

    rows = subscribers(engine)
    assert {email: row.status for email, row in rows.items()} == {
        "Ann.Lee@example.org": "active", "reader2@example.org": "active",
        "reader4@example.org": "unsubscribed", "reader5@example.org": "bounced",
        "twice@example.org": "bounced"}  # reader7 never opted in: skipped
    ann = rows["Ann.Lee@example.org"]
    assert ann.source == "mailchimp" and ann.signup_ip == "198.51.100.1"
    assert ann.confirm_ip == "198.51.100.1"
    assert ann.confirmed_at.isoformat().startswith("2020-02-03T04:07:00")
    assert json.loads(ann.attrs) == {"First Name": "Reader 1", "Last Name": "Lee, Jr.",
                                     "MMERGE5": 'likes "async"',
                                     "mailchimp": {"leid": "900001", "euid": "e000000001"}}
    assert all(row.confirm_nonce is None for row in rows.values())  # nobody asked to confirm

    [created] = changes(engine, "Ann.Lee@example.org")
    assert created.source == "mailchimp" and created.to_status == "active"
    detail = json.loads(created.detail)
    assert detail["optin_time"].startswith("2020-02-03T04:05:06")
    assert detail["confirm_ip"] == "198.51.100.1" and detail["leid"] == "900001"
    assert detail["euid"] == "e000000001" and detail["line"] == 2
    [by_hand] = changes(engine, "reader2@example.org")  # empty times: known to be unknown
    assert "optin_time" not in json.loads(by_hand.detail)
    [left] = changes(engine, "reader4@example.org")
    left_detail = json.loads(left.detail)
    assert left_detail["unsubscribed_at"].startswith("2025-06-11T09:30:00")
    assert left_detail["reason"] == "OTHER" and left_detail["reason_other"] == "too many mails, sorry"
    assert "1 nonsubscribed" in result.stdout
    assert not (Path(os.environ["MAILER_OUTBOX_DIR"]) / "new").exists()  # nothing was mailed


def test_an_address_in_two_files_takes_the_stricter_state_and_the_report_names_it(
        run, engine, tmp_path):
    result = run("import-mailchimp", str(write_zip(tmp_path / "a.zip", the_export())))
    assert result.exit_code == 0, result.output
    assert subscribers(engine)["twice@example.org"].status == "bounced"
    assert (f"twice@example.org is in {file_name('cleaned')} line 3 and in "
            f"{file_name('subscribed')} line 4: the stricter one holds (bounced)") in result.stdout


def test_no_reader_already_here_becomes_less_restricted(run, engine, tmp_path, settings):
    add_existing(engine, **{"reader1@example.org": "unsubscribed",
                            "reader2@example.org": "bounced", "reader3@example.org": "complained",
                            "reader4@example.org": "active", "reader5@example.org": "pending",
                            "reader6@example.org": "active"})
    assert run("forget", "reader8@example.org", "--yes").exit_code == 0
    export = write_dir(tmp_path / "unpacked", {
        file_name("subscribed"): csv_bytes("subscribed", [member(n) for n in (1, 2, 3, 5, 8)]),
        file_name("unsubscribed"): csv_bytes("unsubscribed", [member(4)]),
        file_name("cleaned"): csv_bytes("cleaned", [member(6)]),
    })
    result = run("import-mailchimp", str(export))
    assert result.exit_code == 0, result.output
    states = {email: row.status for email, row in subscribers(engine).items()}
    assert states == {"reader1@example.org": "unsubscribed", "reader2@example.org": "bounced",
                      "reader3@example.org": "complained", "reader4@example.org": "unsubscribed",
                      "reader5@example.org": "active", "reader6@example.org": "bounced"}
    # a stricter export state goes through the one door, with Mailchimp's record attached
    last = changes(engine, "reader4@example.org")[-1]
    assert (last.from_status, last.to_status, last.source) == ("active", "unsubscribed",
                                                               "mailchimp")
    assert json.loads(last.detail)["leid"] == "900004"
    assert "kept, stricter here than in the export: 1 unsubscribed, 1 bounced, 1 complained" \
        in result.stdout
    assert "reader8@example.org was forgotten at their request; skipped" in result.stdout


def test_invalid_rows_are_reported_with_file_and_line_and_the_rest_is_imported(
        run, engine, tmp_path):
    export = write_zip(tmp_path / "a.zip", {file_name("subscribed"): csv_bytes("subscribed", [
        member(1, NOTES="met at RustConf,\r\nsecond line of the note"),  # spans two lines
        member(2, email="not an address"), member(3, OPTIN_TIME="03/02/2020"),
        member(4, email=""), member(5)])})
    result = run("import-mailchimp", str(export))
    assert result.exit_code == 0, result.output
    assert set(subscribers(engine)) == {"reader1@example.org", "reader5@example.org"}
    name = file_name("subscribed")
    assert f"{name} line 4: not an address is not a valid e-mail address" in result.stdout
    assert f"{name} line 5: OPTIN_TIME: '03/02/2020' is not a time" in result.stdout
    assert f"{name} line 6: the e-mail address is empty" in result.stdout
    assert "3 invalid" in result.stdout


def test_a_rerun_changes_nothing_and_says_so(run, engine, tmp_path):
    export = str(write_zip(tmp_path / "a.zip", the_export()))
    first = run("import-mailchimp", export)
    assert "nothing changed" not in first.stdout
    history_before = len(changes(engine, "twice@example.org"))
    again = run("import-mailchimp", export, "--json")
    report = json.loads(again.stdout)
    assert report["added"] == {} and report["changed"] == {} and report["unchanged"] == 5
    assert report["changed_anything"] is False
    assert len(changes(engine, "twice@example.org")) == history_before
    assert "nothing changed: mailer already holds everything in this export" in \
        run("import-mailchimp", export).stdout


def test_dry_run_prints_the_same_report_and_writes_nothing(run, engine, tmp_path):
    add_existing(engine, **{"reader4@example.org": "active"})
    export = str(write_zip(tmp_path / "a.zip", the_export()))
    dry = run("import-mailchimp", export, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert set(subscribers(engine)) == {"reader4@example.org"}
    assert subscribers(engine)["reader4@example.org"].status == "active"
    real = run("import-mailchimp", export)
    assert dry.stdout.splitlines()[0].startswith("dry run: nothing is written")
    # the same figures, said as what it would do
    would = [line.replace("would add:", "added:").replace("would change:", "changed:")
             for line in dry.stdout.splitlines()[1:]]
    assert would == real.stdout.splitlines()
    assert "would change: 1 active → unsubscribed" in dry.stdout
    assert "changed: 1 active → unsubscribed" in real.stdout


def test_a_zip_and_its_unpacked_folder_import_alike(run, engine, tmp_path):
    files = the_export()
    from_zip = json.loads(run("import-mailchimp", str(write_zip(tmp_path / "a.zip", files)),
                              "--dry-run", "--json").stdout)
    from_dir = json.loads(run("import-mailchimp", str(write_dir(tmp_path / "d", files)),
                              "--dry-run", "--json").stdout)
    assert from_zip == from_dir and from_zip["rows"] == 7


@pytest.mark.parametrize("make_export, message", [
    (lambda tmp: tmp / "missing.zip", "does not exist"),
    (lambda tmp: write_zip(tmp / "other.zip", {"readme.txt": b"hello"}),
     "holds no Mailchimp export files"),
    (lambda tmp: (tmp / "junk.zip").write_bytes(b"not a zip") and tmp / "junk.zip",
     "is not a Mailchimp export zip"),
    (lambda tmp: write_zip(tmp / "broken.zip", {
        file_name("subscribed"): csv_bytes("subscribed", [member(1)]),
        file_name("cleaned"): b'"Email","CLEAN_TIME"\r\n"x@example.org",""\r\n'}),
     "has no 'Email Address' column"),
])
def test_a_broken_export_is_one_error_line_and_writes_nothing(run, engine, tmp_path,
                                                              make_export, message):
    result = run("import-mailchimp", str(make_export(tmp_path)))
    assert result.exit_code == 1 and message in result.stderr
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    assert subscribers(engine) == {}


def test_the_shared_sample_export_imports(run, engine, shared_dir):
    sample = shared_dir / "mailchimp" / "audience-export-sample.zip"
    if not sample.is_file():
        pytest.skip("no Mailchimp sample in ../shared")
    first = json.loads(run("import-mailchimp", str(sample), "--json").stdout)
    assert first["invalid"] == [] and sum(first["added"].values()) == first["rows"]
    again = json.loads(run("import-mailchimp", str(sample), "--json").stdout)
    assert again["changed_anything"] is False


@pytest.mark.slow
@pytest.mark.peer
def test_only_subscribed_readers_get_the_issue(mailer_env, tmp_path):
    export = write_zip(tmp_path / "a.zip", the_export())

    def mailer(*args: str) -> subprocess.CompletedProcess:
        return run_mailer(mailer_env, *args, cwd=tmp_path)

    imported = mailer("subscribers", "import-mailchimp", str(export))
    assert imported.returncode == 0, imported.stderr
    sent = mailer("send", "--issue", "644", "--yes")
    assert sent.returncode == 0, sent.stderr
    outbox = Path(mailer_env["MAILER_OUTBOX_DIR"]) / "new"
    recipients = sorted(line.split(":", 1)[1].strip() for path in outbox.iterdir()
                        for line in path.read_text().splitlines() if line.startswith("To:"))
    assert recipients == ["Ann.Lee@example.org", "reader2@example.org"]


@pytest.mark.postgres
def test_import_and_rerun_on_postgresql(pg_url, mailer_env, monkeypatch, tmp_path):
    from mailer.config import get_settings
    from mailer.store.db import get_engine, reset_engines

    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    reset_engines()
    runner = CliRunner()
    export = str(write_zip(tmp_path / "a.zip", the_export()))
    first = json.loads(runner.invoke(app, ["subscribers", "import-mailchimp", export,
                                           "--json"]).stdout)
    assert first["added"] == {"bounced": 2, "unsubscribed": 1, "active": 2}
    again = json.loads(runner.invoke(app, ["subscribers", "import-mailchimp", export,
                                           "--json"]).stdout)
    assert again["changed_anything"] is False
    states = {e: r.status for e, r in subscribers(get_engine(pg_url)).items()}
    assert states["twice@example.org"] == "bounced"
