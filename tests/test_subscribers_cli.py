"""`mailer subscribers ...` as an operator types it: CliRunner on the app, and the installed
command in a subprocess, on a private SQLite file."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app

MAILER = str(Path(sys.executable).parent / "mailer")


@pytest.fixture
def run(mailer_env):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, ["subscribers", *args], input=input)

    return invoke


def counts(run) -> dict[str, int]:
    result = run("count", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_twice_says_so_and_succeeds(run):
    first = run("add", "demo-reader@example.org", "--confirmed")
    assert first.exit_code == 0 and "added demo-reader@example.org as active" in first.stdout
    second = run("add", "Demo-Reader@EXAMPLE.org", "--confirmed")
    assert second.exit_code == 0 and "already there (active)" in second.stdout
    assert counts(run)["active"] == 1 and counts(run)["total"] == 1


@pytest.mark.parametrize("address", ["not-an-address", "a@example.org\r\nBcc: b@example.org",
                                     "x" * 300 + "@example.org"])
def test_a_bad_address_is_one_error_line_and_changes_nothing(run, address):
    result = run("add", address)
    assert result.exit_code == 1
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert counts(run)["total"] == 0


def test_import_reports_rows_and_is_idempotent(run, tmp_path):
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email,name\nann@example.org,Ann\nbob@,Bob\nann@example.org,Ann\n"
                        "cid@example.org,Cid\n")
    result = run("import", str(csv_file), "--confirmed")
    assert result.exit_code == 0, result.output
    assert "4 rows: 2 added, 0 pending confirmed, 0 already there, 1 repeated in the file" in result.stdout
    assert "line 3: bob@" in result.stdout

    again = run("import", str(csv_file), "--confirmed", "--json")
    report = json.loads(again.stdout)
    assert (report["added"], report["existing"], report["duplicates"]) == (0, 2, 1)
    assert [row["line"] for row in report["invalid"]] == [3]
    assert counts(run)["active"] == 2


def test_import_of_a_missing_or_headerless_file_is_one_line(run, tmp_path):
    assert run("import", str(tmp_path / "nope.csv")).stderr.startswith("error: cannot read")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("mail\nann@example.org\n")
    result = run("import", str(wrong))
    assert result.exit_code == 1 and "no 'email' column" in result.stderr
    assert counts(run)["total"] == 0


def test_export_csv_and_json_by_status(run, tmp_path):
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email,team\nann@example.org,=HYPERLINK(\"http://evil\")\n"
                        "bob@example.org,docs\n")
    run("import", str(csv_file), "--confirmed")
    run("add", "=sum@example.org", "--confirmed")
    run("remove", "bob@example.org")

    exported = run("export")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["email"], r["status"]) for r in rows] == [
        ("ann@example.org", "active"), ("bob@example.org", "unsubscribed"),
        ("'=sum@example.org", "active")]  # a spreadsheet shows it, never runs it
    assert json.loads(rows[0]["attrs"]) == {"team": '=HYPERLINK("http://evil")'}

    active = json.loads(run("export", "--status", "active", "--format", "json").stdout)
    assert [r["email"] for r in active] == ["ann@example.org", "=sum@example.org"]

    # our own export imports back without losing or inventing anything
    exported_file = tmp_path / "export.csv"
    exported_file.write_text(exported.stdout)
    report = json.loads(run("import", str(exported_file), "--json").stdout)
    assert (report["added"], report["existing"], report["invalid"]) == (0, 3, [])

    assert run("export", "--format", "xml").exit_code == 1
    assert run("export", "--status", "happy").exit_code == 2  # click names the valid choices


def test_list_shows_a_table_and_json(run):
    for n in range(5):
        run("add", f"r{n}@example.org", "--confirmed")
    run("remove", "r1@example.org")
    table = run("list", "--limit", "3")
    assert table.exit_code == 0 and "r0@example.org" in table.stdout
    assert "r3@example.org" not in table.stdout
    unsubscribed = json.loads(run("list", "--status", "unsubscribed", "--json").stdout)
    assert [s["email"] for s in unsubscribed] == ["r1@example.org"]


def test_show_prints_the_consent_record(run):
    run("add", "ann@example.org", "--confirmed")
    run("remove", "ann@example.org")
    record = json.loads(run("show", "ann@example.org", "--json").stdout)
    assert record["status"] == "unsubscribed"
    assert [(c["from"], c["to"], c["source"]) for c in record["changes"]] == [
        (None, "active", "cli"), ("active", "unsubscribed", "cli")]
    assert run("show", "nobody@example.org").stderr.startswith("error: nobody@example.org is not")


def test_forget_asks_first_then_erases_and_blocks_re_adding(run, tmp_path):
    run("add", "ann@example.org", "--confirmed")
    declined = run("forget", "ann@example.org", input="n\n")
    assert declined.exit_code != 0 and counts(run)["total"] == 1

    assert run("forget", "ann@example.org", input="y\n").exit_code == 0
    assert counts(run)["total"] == 0
    refused = run("add", "ann@example.org")
    assert refused.exit_code == 1 and "forgotten" in refused.stderr
    csv_file = tmp_path / "old.csv"
    csv_file.write_text("email\nann@example.org\n")
    assert "was forgotten at their request; skipped" in run("import", str(csv_file)).stdout
    assert counts(run)["total"] == 0
    assert run("add", "ann@example.org", "--allow-forgotten").exit_code == 0


def test_remove_an_unknown_address_is_an_error(run):
    result = run("remove", "nobody@example.org")
    assert result.exit_code == 1 and "not a subscriber" in result.stderr


@pytest.mark.slow
def test_installed_command_imports_and_counts(mailer_env, tmp_path):
    csv_file = tmp_path / "big.csv"
    csv_file.write_text("email,city\n" + "".join(f"r{n}@example.org,c{n}\n" for n in range(5_000))
                        + "broken\n")
    env = {**os.environ, **mailer_env}
    imported = subprocess.run([MAILER, "subscribers", "import", str(csv_file), "--json"],
                              env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["added"] == 5_000 and report["invalid"][0]["line"] == 5_002
    counted = subprocess.run([MAILER, "subscribers", "count", "--json"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert json.loads(counted.stdout)["pending"] == 5_000
