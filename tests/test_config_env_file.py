"""A `.env` that is there but cannot be read (issue 20, item 5): one line naming the file and
the fix, exit 2, and nothing done on default settings instead.

The deployed layout links `.env` to /etc/mailer/mailer.env (0640 root:mailer); run by another
user that is "permission denied". The tests run as root, which reads any file whatever its
mode, so the installed command runs with the two capabilities that let root do so
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) dropped: then a 0000 file is refused to it as to anyone.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from tests.mailer_cli import MAILER  # the installed command: its process drops root's file access

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _without_root_file_access() -> None:
    """In the child before exec: root's next program may not bypass file permissions."""
    if os.geteuid() != 0:
        return  # an ordinary user is refused already
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_installed(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return subprocess.run([MAILER, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60, preexec_fn=_without_root_file_access)


def run_here(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def the_one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output  # not a 227-line traceback
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def deployed(tmp_path: Path) -> tuple[Path, Path]:
    """A working folder whose .env links to a settings file elsewhere (as deploy/ does it)."""
    etc = tmp_path / "etc-mailer"
    etc.mkdir()
    settings_file = etc / "mailer.env"
    (tmp_path / "var").mkdir()
    settings_file.write_text(f"MAILER_DATABASE_URL=sqlite:///{tmp_path / 'var' / 'mailer.db'}\n"
                             "MAILER_SECRET_KEY=env-file-key-0123456789abcdef\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").symlink_to(settings_file)
    return work, settings_file


@pytest.mark.parametrize("command", [["stats"], ["subscribers", "add", "ann@example.org"]])
def test_an_unreadable_env_file_is_one_line_naming_it(deployed, command):
    work, settings_file = deployed
    settings_file.chmod(0o000)

    result = run_installed(work, *command)

    assert result.returncode == 2, result.stdout
    assert the_one_line(result.stderr) == (
        f"error: cannot read .env ({settings_file}): permission denied; run mailer as the user "
        "the file belongs to, or give that user read access")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in work.iterdir()) == [".env"]  # no subscribers.db made instead
    assert not (settings_file.parent.parent / "var" / "mailer.db").exists()


def test_the_same_file_readable_is_used(deployed):
    work, settings_file = deployed
    settings_file.chmod(0o640)

    result = run_installed(work, "subscribers", "add", "ann@example.org")

    assert result.returncode == 0, result.stderr
    assert (settings_file.parent.parent / "var" / "mailer.db").is_file()


def test_a_dangling_env_link_is_one_line_not_silent_defaults(deployed, mailer_env, monkeypatch):
    work, settings_file = deployed
    settings_file.unlink()
    monkeypatch.chdir(work)

    result = run_here("stats")

    assert result.exit_code == 2
    assert the_one_line(result.output) == (
        f"error: cannot read .env ({settings_file}): it is a link to a file that does not "
        "exist; restore the file or remove the link")


def test_an_env_folder_is_one_line(mailer_env, tmp_path, monkeypatch):
    (tmp_path / ".env").mkdir()

    result = run_here("subscribers", "count")

    assert result.exit_code == 2
    assert the_one_line(result.output) == (
        f"error: cannot read .env ({tmp_path / '.env'}): it is a folder, not a file of "
        "MAILER_* settings")


def test_a_loop_of_links_is_one_line(mailer_env, tmp_path, monkeypatch):
    (tmp_path / ".env").symlink_to(tmp_path / "other.env")
    (tmp_path / "other.env").symlink_to(tmp_path / ".env")

    result = run_here("stats")

    assert result.exit_code == 2
    assert the_one_line(result.output).startswith("error: cannot read .env (")


def test_no_env_file_at_all_is_fine(mailer_env, engine):
    result = run_here("subscribers", "count")

    assert result.exit_code == 0, result.output
