"""docs/github-workflow-check.yml: valid YAML, the right triggers, and its shell steps work on a
real pull request branch in a local git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parent.parent / "docs" / "github-workflow-check.yml"
FIXTURES = Path(__file__).parent / "fixtures" / "check"


def load_workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def step(workflow: dict, name: str) -> dict:
    return next(s for s in workflow["jobs"]["check"]["steps"] if s.get("name") == name)


def test_workflow_is_valid_yaml_triggered_by_pull_requests_touching_content():
    workflow = load_workflow()
    # YAML 1.1 reads the bare key `on` as True; GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    assert set(triggers) == {"pull_request"}
    assert triggers["pull_request"]["paths"] == ["content/**"]
    assert workflow["permissions"] == {"contents": "read"}
    steps = workflow["jobs"]["check"]["steps"]
    assert any("mailer check" in s.get("run", "") for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"].startswith("always()")
    assert "rendered/*.html" in upload["with"]["path"] and "rendered/*.txt" in upload["with"]["path"]


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_steps_check_only_the_issues_a_pull_request_changes(mailer_env, tmp_path):
    origin, repo, temp = tmp_path / "origin.git", tmp_path / "twir", tmp_path / "runner"
    temp.mkdir()
    git(tmp_path, "init", "-q", "--bare", "-b", "master", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(repo))
    (repo / "content").mkdir()
    shutil.copy(FIXTURES / "clean" / "2031-03-05-this-week-in-rust.md", repo / "content")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "issue 670")
    git(repo, "push", "-q", "origin", "HEAD:master")
    git(repo, "checkout", "-qb", "issue-680")
    shutil.copy(FIXTURES / "faulty" / "2031-03-19-this-week-in-rust.md", repo / "content")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "issue 680")

    workflow = load_workflow()
    env = {**os.environ, **mailer_env, "RUNNER_TEMP": str(temp), "GITHUB_OUTPUT": str(temp / "out"),
           "BASE_REF": "master", "GITHUB_ACTIONS": "true",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    listing = subprocess.run(["bash", "-e", "-c", step(workflow, "List the issues this pull request adds or changes")["run"]],
                             cwd=repo, env=env, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert (temp / "out").read_text() == "count=1\n"
    check = subprocess.run(["bash", "-e", "-c", step(workflow, "mailer check")["run"]],
                           cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode != 0
    assert "::error file=content/2031-03-19-this-week-in-rust.md,line=10::" in check.stdout
    assert "2031-03-05" not in check.stdout  # the unchanged issue is not checked
    assert sorted(p.name for p in (temp / "rendered").iterdir()) == ["680.html", "680.mjml", "680.txt"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_pull_requests_file_names_are_listed_but_never_obeyed(mailer_env, tmp_path):
    """A file named `content/##[add-mask]…` (or `::error …`) in a pull request is printed by the
    listing step: the runner must read it as text, not as a command."""
    from tests.runner_commands import runner_commands

    origin, repo, temp = tmp_path / "origin.git", tmp_path / "twir", tmp_path / "runner"
    temp.mkdir()
    git(tmp_path, "init", "-q", "--bare", "-b", "master", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(repo))
    (repo / "content").mkdir()
    (repo / "content" / "README").write_text("issues\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "start")
    git(repo, "push", "-q", "origin", "HEAD:master")
    git(repo, "checkout", "-qb", "hostile")
    for name in ("##[add-mask]secret.md", "::error file=x,line=1::pwned.md"):
        shutil.copy(FIXTURES / "clean" / "2031-03-05-this-week-in-rust.md", repo / "content" / name)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hostile names")
    env = {**os.environ, **mailer_env, "RUNNER_TEMP": str(temp), "GITHUB_OUTPUT": str(temp / "out"),
           "BASE_REF": "master", "GITHUB_ACTIONS": "true"}
    run = step(load_workflow(), "List the issues this pull request adds or changes")["run"]
    listing = subprocess.run(["bash", "-e", "-c", run], cwd=repo, env=env, capture_output=True,
                             text=True)
    assert listing.returncode == 0, listing.stderr
    assert "secret.md" in listing.stdout and "pwned.md" in listing.stdout  # still listed
    assert runner_commands(listing.stdout) == []
    assert (temp / "out").read_text() == "count=2\n"
