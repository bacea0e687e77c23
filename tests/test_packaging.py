"""mailer as a user installs it: a wheel, built from the repository, in a fresh virtual environment.

The wheel must carry the templates and the example issue (they sit at the top of the repository,
outside the package), declare only the dependencies the runtime code imports, and give a working
`mailer` from any folder: render an issue, send it to the outbox, use an operator's own templates.
The dependencies come from the package index as for any user (pip's cache makes reruns faster).
"""

from __future__ import annotations

import mailbox
import os
import shutil
import subprocess
import sys
import zipfile
from email import message_from_bytes, policy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                    "__pycache__", "outbox", "out", "*.db", ".env", ".pytest_cache",
                                    ".hypothesis", ".import_linter_cache")


def pip(python: Path | str, *args: str, cwd: Path) -> None:
    result = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True, cwd=cwd, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the repository (the checkout stays clean)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "mailer-src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    pip(sys.executable, "wheel", "--no-deps", "--wheel-dir", str(work / "dist"), str(source),
        cwd=work)
    [built] = (work / "dist").glob("mailer-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed; its bin/."""
    venv = tmp_path_factory.mktemp("site") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip(venv / "bin" / "python", "install", "--no-compile", str(wheel), cwd=venv.parent)
    return venv / "bin"


@pytest.fixture
def user_env(tmp_path) -> dict[str, str]:
    """A user's shell: no MAILER_* settings from the test run, no path into the checkout."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MAILER_", "PYTHON", "VIRTUAL_ENV"))}
    env["MAILER_SECRET_KEY"] = "packaging-test-secret-0123456789"
    return env


def run(bin_dir: Path, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "mailer"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_wheel_carries_templates_examples_and_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").rglob("*"):
        if template.is_file():
            assert f"mailer/templates/{template.relative_to(ROOT / 'templates')}" in names
    assert "mailer/examples/2026-03-25-this-week-in-rust.md" in names
    assert "mailer/store/migrations/versions/0001_initial_schema.py" in names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "templates/"))]


@pytest.mark.slow
def test_runtime_dependencies_leave_out_benchmark_only_packages(wheel):
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line.split(":", 1)[1].strip() for line in
                    archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert not [r for r in runtime if r.startswith("css-inline")]
    assert any(r.startswith("css-inline") and "extra == \"bench\"" in r for r in requires)
    assert any(r.startswith("mjml-python") for r in runtime)


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first user builds the environment: a minute or more
def test_installed_mailer_renders_and_sends_from_any_folder(installed, user_env, tmp_path):
    home = tmp_path / "somewhere-else"
    home.mkdir()
    shipped = run(installed, user_env, home, "templates", "path")
    assert shipped.returncode == 0, shipped.stderr
    assert Path(shipped.stdout.strip()).is_relative_to(installed.parent)  # not the checkout

    rendered = run(installed, user_env, home, "render", "--issue", "644", "--out", "mail")
    assert rendered.returncode == 0, rendered.stderr
    html = (home / "mail" / "644.html").read_text()
    assert html.startswith("<!doctype html>") and "This Week in Rust 644" in html

    added = run(installed, user_env, home, "subscribers", "add", "reader@example.org",
                "--confirmed")
    assert added.returncode == 0, added.stderr
    sent = run(installed, user_env, home, "send", "--issue", "644", "--yes")
    assert sent.returncode == 0, sent.stderr
    [message] = list(mailbox.Maildir(home / "outbox", create=False))
    mail = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert mail["To"] == "reader@example.org"
    assert "644" in mail["Subject"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert {part.get_content_type() for part in mail.walk()} >= {"text/plain", "text/html"}
    assert (home / "subscribers.db").is_file()  # the default database, in the user's folder


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_operators_copy_of_the_templates_is_used(installed, user_env, tmp_path):
    copied = run(installed, user_env, tmp_path, "templates", "copy", "my-templates")
    assert copied.returncode == 0, copied.stderr
    assert f"MAILER_TEMPLATES_DIR={tmp_path / 'my-templates'}" in copied.stdout
    footer = tmp_path / "my-templates" / "email" / "footer.mjml.j2"
    footer.write_text(footer.read_text().replace("<p>{{ sender_line }}</p>",
                                                 "<p>Edited by the TWiR editors.</p>"))
    env = {**user_env, "MAILER_TEMPLATES_DIR": str(tmp_path / "my-templates")}
    rendered = run(installed, env, tmp_path, "render", "--issue", "644", "--out", "mail")
    assert rendered.returncode == 0, rendered.stderr
    assert "Edited by the TWiR editors." in (tmp_path / "mail" / "644.html").read_text()

    again = run(installed, user_env, tmp_path, "templates", "copy", "my-templates")
    assert again.returncode != 0 and "not an empty folder" in again.stderr
    assert "Edited by the TWiR editors." in footer.read_text()  # never overwritten
