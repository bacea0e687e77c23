"""Progress on long commands: plain periodic lines when the output is not a terminal (cron, logs,
pipes), nothing extra on quick runs, and the command's own output left as it was."""

from __future__ import annotations

import csv
import io
import re
import subprocess

import pytest
from rich.console import Console

from tests.mailchimp_export import write_large_export
from tests.mailer_cli import mailer
from tests.fakes import FakeClock

PERIODIC = re.compile(r"^imported [\d,]+ of [\d,]+ rows \(\d+%\)$")


def reporter(settings, total, **kwargs):
    from mailer.cli.progress import Progress

    out = io.StringIO()
    clock = FakeClock(100.0)
    progress = Progress("imported", total=total, every=5.0, clock=clock,
                        console=Console(file=out, force_terminal=False, width=200), **kwargs)
    return progress, clock, out


def test_a_quick_run_prints_nothing_extra(settings):
    progress, clock, out = reporter(settings, 300)
    with progress:
        clock.now += 1.0
        progress.advance(300)
    assert out.getvalue() == ""


def test_a_long_run_prints_a_line_per_interval_and_a_closing_line(settings):
    progress, clock, out = reporter(settings, 200_000)
    with progress:
        for _ in range(4):
            clock.now += 3.0  # a line every 5 s: after the 2nd and the 4th step
            progress.advance(50_000)
    assert out.getvalue().splitlines() == [
        "imported 100,000 of 200,000 rows (50%)",
        "imported 200,000 of 200,000 rows (100%)",
        "done: imported 200,000 of 200,000 rows in 12.0 s",
    ]


def test_without_a_total_the_line_counts_only(settings):
    progress, clock, out = reporter(settings, None, unit="lines")
    with progress:
        clock.now += 6.0
        progress.advance(12)
    assert out.getvalue().splitlines()[0] == "imported 12 lines"


def run_mailer(env: dict, *args: str) -> subprocess.CompletedProcess:
    # stdout and stderr are not terminals: the mode a cron job or a log file gets
    return mailer({**env, "MAILER_PROGRESS_EVERY": "0.01"}, *args)


@pytest.mark.slow
def test_a_large_import_prints_periodic_progress_lines_off_a_terminal(mailer_env, tmp_path):
    export = tmp_path / "audience.zip"
    write_large_export(export, 20_000)
    result = run_mailer(mailer_env, "subscribers", "import-mailchimp", str(export))
    assert result.returncode == 0, result.stderr
    periodic = [line for line in result.stderr.splitlines() if PERIODIC.match(line)]
    assert len(periodic) >= 3, result.stderr
    assert periodic[-1] != periodic[0]  # it moves
    assert result.stderr.splitlines()[-1].startswith("done: imported 20,000 of 20,000 rows in ")
    # the report on stdout is what it always was
    assert result.stdout.splitlines()[0].endswith("20,000 rows in 3 files (1,000 cleaned, "
                                                  "2,000 unsubscribed, 17,000 subscribed)")
    assert "imported" not in result.stdout

    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email\n" + "".join(f"plain{n}@example.org\n" for n in range(20_000)))
    plain = run_mailer(mailer_env, "subscribers", "import", str(csv_file))
    assert plain.returncode == 0, plain.stderr
    assert len([line for line in plain.stderr.splitlines() if PERIODIC.match(line)]) >= 3
    assert plain.stdout.startswith("20,000 rows: 20,000 added")

    exported = run_mailer(mailer_env, "subscribers", "export")
    assert exported.returncode == 0, exported.stderr
    assert len(list(csv.reader(io.StringIO(exported.stdout)))) == 1 + 40_000  # CSV intact
    assert "done: exported 40,000 of 40,000 subscribers in " in exported.stderr


@pytest.mark.slow
def test_events_replay_shows_progress_off_a_terminal(mailer_env, tmp_path):
    saved = tmp_path / "events.jsonl"
    saved.write_text("[]\n" * 20_000)  # lines it reads and reports as bad, quickly
    result = run_mailer(mailer_env, "events", "replay", str(saved))
    assert result.returncode == 1
    assert re.search(r"^replayed [\d,]+ of 20,000 lines \(\d+%\)$", result.stderr, re.M)
    assert "line 20000: not a JSON object" in result.stderr or "more problems" in result.stderr
