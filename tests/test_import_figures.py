"""Imports as an operator sees them (issue 20: 14, 15, 17, 18): a Mailchimp reader keeps the
times they signed up and confirmed, imports are counted apart from sign-ups, progress counts
records, ``--confirmed`` means one thing in ``add`` and ``import``, and Ctrl-C says how far an
import got."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.store.subscriber_files import IMPORT_CHUNK_ROWS
from tests.subscriber_rows import changes as history, subscribers as readers
from tests.mailchimp_export import csv_bytes, file_name, member, write_large_export, write_zip

MAILER = str(Path(sys.executable).parent / "mailer")


@pytest.fixture
def run(mailer_env):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def naive(moment) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


# -- 14: the reader's own times, imports apart from sign-ups ----------------------------------


def small_export(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "audience.zip", {
        file_name("subscribed"): csv_bytes("subscribed", [
            member(1),  # opted in 04:05:06, confirmed 04:07:00
            member(2, OPTIN_TIME=""),  # confirm time only
            member(3, OPTIN_TIME="2021-05-05 10:00:00", CONFIRM_TIME="2021-05-05 09:00:00"),
            member(4, OPTIN_TIME="", CONFIRM_TIME=""),  # added by hand in Mailchimp
        ]),
        file_name("unsubscribed"): csv_bytes("unsubscribed", [
            member(5, UNSUB_TIME="2025-06-11 09:30:00")]),
    })


def test_a_mailchimp_reader_keeps_their_own_sign_up_and_confirm_times(run, engine, tmp_path):
    before = datetime.utcnow()
    result = run("subscribers", "import-mailchimp", str(small_export(tmp_path)))
    assert result.exit_code == 0, result.output
    rows = readers(engine)
    first = rows["reader1@example.org"]
    assert naive(first.created_at) == datetime(2020, 2, 3, 4, 5, 6)
    assert naive(first.confirmed_at) == datetime(2020, 2, 3, 4, 7)
    assert naive(rows["reader2@example.org"].created_at) == datetime(2020, 2, 3, 4, 7)
    for row in rows.values():  # never signed up after they confirmed
        assert row.confirmed_at is None or naive(row.created_at) <= naive(row.confirmed_at)
    assert naive(rows["reader4@example.org"].created_at) >= before  # unknown: the import time
    # the history's creation row is when mailer learned of them; Mailchimp's times are its detail
    [created] = history(engine, "reader1@example.org")
    assert naive(created.at) >= before
    assert json.loads(created.detail)["confirm_time"].startswith("2020-02-03T04:07:00")


def test_imported_readers_are_counted_apart_from_sign_ups(run, engine, tmp_path):
    assert run("subscribers", "add", "signed-up@example.org", "--confirmed").exit_code == 0
    assert run("subscribers", "import-mailchimp", str(small_export(tmp_path))).exit_code == 0
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email\ncsv1@example.org\ncsv2@example.org\n")
    assert run("subscribers", "import", str(csv_file), "--confirmed").exit_code == 0

    growth = json.loads(run("stats", "--subscribers", "--json").stdout)["weeks"]
    this_week = growth[-1]
    assert (this_week["new"], this_week["confirmed"], this_week["imported"]) == (1, 1, 6)
    assert this_week["unsubscribed"] == 0  # reader5 left Mailchimp, not this list
    assert this_week["net"] == 7
    assert sum(w["new"] for w in growth) == 1  # Mailchimp's old opt-ins are no sign-ups here

    overview = json.loads(run("stats", "--json").stdout)
    week = overview["weeks"][-1]
    assert (week["new"], week["confirmed"], week["imported"]) == (1, 1, 6)
    assert week["unsubscribed"] == 0 and week["list_size"] == 7
    assert overview["signups"]["signups"] == 0  # nobody used the form


def test_the_console_overview_shows_imports_apart_from_sign_ups(run, monkeypatch, tmp_path):
    from tests.web_clients import ADMIN_ENV, PASSWORD, USER, admin_client, basic_auth

    assert run("subscribers", "import-mailchimp", str(small_export(tmp_path))).exit_code == 0
    page = admin_client(monkeypatch, ADMIN_ENV).get("/admin", headers=basic_auth(USER, PASSWORD)).text
    rows = re.findall(r'<tr data-week="[^"]+">(.*?)</tr>', page)
    this_week = re.findall(r"<td[^>]*>([^<]*)</td>", rows[0])  # newest first
    assert this_week[0] == "0"  # sign-ups
    assert this_week[5] == "4"  # list size
    assert '<td data-figure="imported">4</td>' in rows[0]
    assert "4 were imported" in page  # the gains chart says where they came from

# -- 15: progress counts records; a dry run says what it would do -----------------------------


def export_with_long_notes(tmp_path: Path) -> Path:
    notes = "met at RustConf\r\nasked about\r\nthe job board"  # three lines in one cell
    return write_zip(tmp_path / "notes.zip", {file_name("subscribed"): csv_bytes(
        "subscribed", [member(n, NOTES=notes) for n in range(1, 4)])})


@pytest.mark.parametrize("dry_run", [False, True])
def test_progress_counts_records_not_lines_and_a_dry_run_says_would(run, monkeypatch, tmp_path,
                                                                    dry_run):
    monkeypatch.setenv("MAILER_PROGRESS_EVERY", "0.000001")
    from mailer.config import get_settings

    get_settings.cache_clear()
    result = run("subscribers", "import-mailchimp", str(export_with_long_notes(tmp_path)),
                 *(["--dry-run"] if dry_run else []))
    assert result.exit_code == 0, result.output
    verb = "would import" if dry_run else "imported"
    assert re.search(rf"^{verb} 3 of 3 rows \(100%\)$", result.stderr, re.M), result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"done: {verb} 3 of 3 rows in ")
    if dry_run:
        assert "  would add: 3 active" in result.stdout
        assert "imported" not in result.output and "  added" not in result.stdout
    else:
        assert "  added: 3 active" in result.stdout


# -- 17: one rule for --confirmed ------------------------------------------------------------


def status_of(run, email: str) -> tuple[str, list[str]]:
    shown = json.loads(run("subscribers", "show", email, "--json").stdout)
    return shown["status"], [f"{c['to']}/{c['source']}" for c in shown["changes"]]


def test_add_confirmed_confirms_a_pending_reader_and_says_so(run):
    assert run("subscribers", "add", "ann@example.org").exit_code == 0
    result = run("subscribers", "add", "ann@example.org", "--confirmed")
    assert result.exit_code == 0, result.output
    assert "confirmed 1 pending reader: ann@example.org is now active" in result.stdout
    assert "nothing added" not in result.stdout
    assert status_of(run, "ann@example.org") == ("active", ["pending/cli", "active/cli"])

    again = run("subscribers", "add", "ann@example.org", "--confirmed")
    assert "already there (active); nothing changed" in again.stdout


def test_add_confirmed_never_reactivates_a_reader_who_left(run):
    assert run("subscribers", "add", "bob@example.org", "--confirmed").exit_code == 0
    assert run("subscribers", "remove", "bob@example.org").exit_code == 0
    result = run("subscribers", "add", "bob@example.org", "--confirmed")
    assert result.exit_code == 0
    assert "bob@example.org is already there (unsubscribed); nothing changed" in result.stdout
    assert status_of(run, "bob@example.org")[0] == "unsubscribed"


def test_import_confirmed_confirms_pending_readers_and_counts_each_outcome(run, tmp_path):
    assert run("subscribers", "add", "pending@example.org").exit_code == 0
    assert run("subscribers", "add", "left@example.org", "--confirmed").exit_code == 0
    assert run("subscribers", "remove", "left@example.org").exit_code == 0
    assert run("subscribers", "add", "active@example.org", "--confirmed").exit_code == 0
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email\npending@example.org\nleft@example.org\nactive@example.org\n"
                        "new@example.org\n")
    result = run("subscribers", "import", str(csv_file), "--confirmed")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("4 rows: 1 added, 1 pending confirmed, 2 already there,")
    assert status_of(run, "pending@example.org") == ("active", ["pending/cli", "active/import"])
    assert status_of(run, "left@example.org")[0] == "unsubscribed"
    report = json.loads(run("subscribers", "import", str(csv_file), "--confirmed",
                            "--json").stdout)
    assert (report["added"], report["confirmed"], report["existing"]) == (0, 0, 4)

    plain = tmp_path / "plain.csv"
    plain.write_text("email\nlater@example.org\n")
    assert run("subscribers", "add", "later@example.org").exit_code == 0
    assert json.loads(run("subscribers", "import", str(plain), "--json").stdout)["confirmed"] == 0
    assert status_of(run, "later@example.org")[0] == "pending"  # without --confirmed: as it was


# -- 18: Ctrl-C during an import --------------------------------------------------------------


def _interrupt_at_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_after_progress(env: dict, args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``mailer`` with progress lines every few ms; SIGINT it once a line shows rows done."""
    # SIGINT at its default in the child, as at a terminal: a suite started in the background
    # by a non-interactive shell (`.ci/run &`) passes on SIGINT ignored, and the import, like any
    # program, then keeps going (a `nohup … &` import is meant to)
    process = subprocess.Popen([MAILER, *args], env={**env, "MAILER_PROGRESS_EVERY": "0.01"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                               preexec_fn=_interrupt_at_default)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if re.match(r"^imported [1-9][\d,]* of ", line):
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    process.stdout.read()
    return process.wait(timeout=120), "".join(seen) + rest


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mailchimp", "csv"])
def test_ctrl_c_says_how_far_the_import_got_and_rerunning_finishes_it(mailer_env, engine,
                                                                      tmp_path, kind):
    rows = 60_000
    if kind == "mailchimp":
        source = write_large_export(tmp_path / "audience.zip", rows)
        args = ["subscribers", "import-mailchimp", str(tmp_path / "audience.zip")]
        expected = source
    else:
        csv_file = tmp_path / "readers.csv"
        csv_file.write_text("email\n" + "".join(f"r{n}@example.org\n" for n in range(rows)))
        args = ["subscribers", "import", str(csv_file), "--confirmed"]
        expected = {"subscribed": rows}
    env = {**os.environ, **mailer_env}
    code, stderr = interrupt_after_progress(env, args, tmp_path)
    assert code == 130, stderr
    last = stderr.strip().splitlines()[-1]
    found = re.fullmatch(r"interrupted: ([\d,]+) of 60,000 rows done; run the same command to "
                         r"finish \(rows already imported are skipped\)", last)
    assert found, stderr
    assert "Traceback" not in stderr
    done = int(found.group(1).replace(",", ""))
    assert 0 < done < rows
    # what it says was done is committed (a chunk committed as the signal came may not be
    # counted yet: it is found already there on the re-run)
    assert done <= len(readers(engine)) <= done + IMPORT_CHUNK_ROWS

    again = subprocess.run([MAILER, *args], env=env, capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    statuses = [row.status for row in readers(engine).values()]
    assert statuses.count("active") == expected["subscribed"]
    assert len(statuses) == rows
