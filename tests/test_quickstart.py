"""The README's Quickstart (`make demo`) on a machine without python3.11 (issue 15).

The Makefile picks the newest python3.13 / python3.12 / python3.11 / python3 that runs and is
3.11 or newer. These tests give make a PATH holding only the tools they name, so what the
Makefile finds is exactly what the test put there.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def runs_as(python: str) -> tuple[int, int] | None:
    """(major, minor) of a Python that really runs (a pyenv shim may exist without it)."""
    try:
        done = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    if done.returncode != 0:
        return None
    major, minor = done.stdout.split()
    return int(major), int(minor)


def find_python(minor: int) -> str | None:
    """A working python3.<minor>: on PATH, else in pyenv's or uv's build folders."""
    name = f"python3.{minor}"
    candidates = [shutil.which(name)]
    pyenv = os.environ.get("PYENV_ROOT", "~/.pyenv")
    for pattern in (f"{pyenv}/versions/3.{minor}*/bin/{name}",
                    f"~/.local/share/uv/python/cpython-3.{minor}*/bin/{name}"):
        candidates += sorted(glob.glob(os.path.expanduser(pattern)))
    return next((c for c in candidates if c and runs_as(c) == (3, minor)), None)


def bin_dir(tmp_path: Path, **tools: str) -> Path:
    """A folder of symlinks, used as the whole PATH: make, touch and the named tools."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, target in {"make": MAKE, "touch": shutil.which("touch"), **tools}.items():
        (folder / name).symlink_to(target)
    return folder


def environment(path: Path) -> dict[str, str]:
    # A newcomer's shell: no MAILER_* settings, and not inside another make (CI runs the tests
    # through `make test`, whose MAKELEVEL would make the inner make say "make[1]:"); pip keeps
    # its own configuration.
    inherited = ("MAILER_", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    return {**env, "PATH": str(path)}


def fake_old_python(folder: Path) -> None:
    script = folder / "python3"
    script.write_text("#!/bin/sh\n# an old python3: the version check fails\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_make_picks_a_newer_python_when_there_is_no_python3_11(tmp_path):
    other = find_python(12) or find_python(13)
    if other is None:
        pytest.skip("no working python3.12 or python3.13 on this machine")
    name = Path(other).name
    folder = bin_dir(tmp_path, **{name: other})
    fake_old_python(folder)
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")

    shown = subprocess.run([MAKE, "-s", "--eval", "show: ; @: ; echo $(PYTHON)", "show"],
                           cwd=tmp_path, env=environment(folder), capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(folder / name)


def test_make_without_a_python_says_what_to_install_in_one_line(tmp_path):
    folder = bin_dir(tmp_path)
    fake_old_python(folder)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)

    result = subprocess.run([MAKE, "demo"], cwd=tmp_path, env=environment(folder),
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(ours) == 1, result.stderr
    assert "Python 3.11 or newer" in ours[0] and "install" in ours[0]
    assert not (tmp_path / ".venv").exists()


def fresh_checkout(destination: Path) -> Path:
    """The files a clone of this working tree would hold, as they are on disk now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a fresh virtual environment and every dependency
@pytest.mark.parametrize("minor", [12, 13])
def test_quickstart_make_demo_runs_with_a_python_other_than_3_11(tmp_path, minor):
    python = find_python(minor)
    if python is None:
        pytest.skip(f"no working python3.{minor} on this machine")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot list the files a clone would have")
    checkout = fresh_checkout(tmp_path / "checkout")
    env = environment(bin_dir(tmp_path, **{f"python3.{minor}": python}))

    first = subprocess.run([MAKE, "demo"], cwd=checkout, env=env, capture_output=True,
                           text=True, timeout=1100)

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    used = subprocess.run([str(checkout / ".venv/bin/python"), "--version"],
                          capture_output=True, text=True, timeout=30).stdout
    assert used.startswith(f"Python 3.{minor}.")
    env_file = checkout / ".env"
    assert "wrote" in first.stdout and stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert len(list((checkout / "outbox" / "new").iterdir())) == 1

    key = env_file.read_text()
    again = subprocess.run([MAKE, "demo"], cwd=checkout, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already sent" in again.stdout and env_file.read_text() == key


def test_the_readme_says_how_to_type_mailer_after_make_demo(tmp_path):
    """After `make demo`, the README's `mailer …` commands were `command not found`."""
    readme = (ROOT / "README.md").read_text()
    quickstart = readme[readme.index("## Quickstart"):readme.index("## Using it")]
    prose = re.sub(r"^```.*?^```", "", quickstart, flags=re.DOTALL | re.MULTILINE)
    commands = [span for span in re.findall(r"`([^`\n]+)`", prose) if "activate" in span]
    assert commands, "the Quickstart does not say how to put .venv/bin on the PATH"
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    # The activate script of a real venv, made the way make makes it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")],
                   check=True, timeout=120)
    (venv_bin / "mailer").write_text("#!/bin/sh\necho mailer from the venv\n")
    (venv_bin / "mailer").chmod(0o755)
    shell = subprocess.run(["bash", "-c", f"{commands[0]} && mailer"], cwd=tmp_path,
                           env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                           capture_output=True, text=True, timeout=60)
    assert shell.stdout.strip() == "mailer from the venv", shell.stderr
    assert "activate" in (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n")[0]
