"""`mailer render` and `mailer preview` as a user runs them: a real process, real files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.mailer_cli import mailer

FIXTURE = Path(__file__).parent / "fixtures" / "render" / "quirks-901.md"


@pytest.fixture
def issues_env(mailer_env, tmp_path) -> dict[str, str]:
    issues = tmp_path / "issues"
    issues.mkdir()
    shutil.copy(FIXTURE, issues / "2031-02-05-this-week-in-rust.md")
    return {**os.environ, **mailer_env, "MAILER_ISSUES_DIR": str(issues)}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return mailer(env, *args, cwd=cwd)


def test_render_writes_the_three_files_and_reports_sizes(issues_env, tmp_path):
    result = run(["render", "--issue", "901", "--out", "mail"], issues_env, tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "mail" / "901.html").read_text()
    text = (tmp_path / "mail" / "901.txt").read_text()
    mjml = (tmp_path / "mail" / "901.mjml").read_text()
    assert html.startswith("<!doctype html>") and "<mjml" in mjml
    assert text.startswith("This Week in Rust 901\n")
    size = len(html.encode())
    assert f"{size:,} bytes" in result.stdout
    assert f"{100 * size / 102_400:.1f}% of Gmail's" in result.stdout
    # the fixture's deliberate mistakes are reported, one line each
    assert "warning: image without alt text" in result.stderr
    assert "warning: link without a target: '[dangling][nowhere]'" in result.stderr


def test_render_defaults_to_out_folder(issues_env, tmp_path):
    result = run(["render", "--issue", "901"], issues_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "901.html").is_file()


def test_preview_says_which_file_to_open(issues_env, tmp_path):
    result = run(["preview", "--issue", "901", "--out", "p"], issues_env, tmp_path)
    assert result.returncode == 0, result.stderr
    uri = (tmp_path / "p" / "901.html").resolve().as_uri()
    assert uri in result.stdout.replace("\n", "")


def test_source_path_renders_a_file_directly(issues_env, tmp_path):
    result = run(["render", "--source", str(FIXTURE), "--out", "s"], issues_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s" / "901.txt").is_file()


@pytest.mark.parametrize("args, message", [
    (["render", "--issue", "7"], "no issue 7"),
    (["render"], "--issue NUMBER or --source PATH"),
    (["preview", "--source", "missing.md"], "missing.md"),
])
def test_mistakes_are_one_error_line_and_write_nothing(issues_env, tmp_path, args, message):
    result = run([*args, "--out", "nothing"], issues_env, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert not (tmp_path / "nothing").exists()
