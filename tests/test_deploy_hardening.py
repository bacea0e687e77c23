"""The systemd units' sandbox: scored by systemd itself, and tolerated by the commands they run.

`systemd-analyze security` rates each unit's exposure from 0 (locked down) to 10. The strongest
setting, the system call filter, is also the one that could break the program: a call outside
the filter fails with EPERM. So the commands the units run are run here under the same filter,
built by libseccomp from systemd's own list of the groups the units name.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import httpx
import pytest

from tests.plugins.processes import free_port, stop_process

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SERVICES = ["mailer-serve.service", "mailer-send.service", "mailer-events.service",
            "mailer-backup.service"]
# "OK" on systemd's scale ends at 4.9; the units were 5.4 ("MEDIUM") before the hardening.
HIGHEST_EXPOSURE = 2.0
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package: .ci/run installs it)")
    return path


@pytest.mark.parametrize("unit", SERVICES)
def test_systemd_rates_each_service_well_sandboxed(unit: str) -> None:
    analyze = _tool("systemd-analyze")
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager",
                             str(DEPLOY / unit)], capture_output=True, text=True, timeout=120)
    match = EXPOSURE.search(result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= HIGHEST_EXPOSURE, result.stdout


def _filter_lines(unit: str) -> list[str]:
    return [line.split("=", 1)[1].split() for line in (DEPLOY / unit).read_text().splitlines()
            if line.startswith("SystemCallFilter=")]


@cache
def _expand(analyze: str, name: str) -> frozenset[str]:
    """A system call, or a systemd group (@name) with its nested groups, as system call names."""
    if not name.startswith("@"):
        return frozenset([name])
    listing = subprocess.run([analyze, "syscall-filter", name], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            names |= _expand(analyze, entry)
    return frozenset(names)


def _allowed_syscalls(analyze: str, unit: str) -> list[str]:
    """What systemd lets through: the first (allow) list, less every later `~` (deny) list."""
    allowed: set[str] | None = None
    for words in _filter_lines(unit):
        deny = words[0].startswith("~")
        names = set().union(*(_expand(analyze, word.lstrip("~")) for word in words))
        if deny:
            assert allowed is not None, f"{unit}: a deny list before an allow list"
            allowed -= names
        else:
            allowed = names if allowed is None else allowed | names
    assert allowed, f"{unit} sets no SystemCallFilter"
    return sorted(allowed)


# Loads the filter the way systemd does just before it starts the program (everything else
# fails with EPERM), then becomes the program: the filter holds across exec.
SANDBOX = textwrap.dedent("""
    import ctypes, errno, os, sys
    lib = ctypes.CDLL(sys.argv[1])
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(0x00050000 | errno.EPERM)
    for name in sys.argv[2].split(","):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # a call this architecture does not have is nothing to allow
            lib.seccomp_rule_add(context, 0x7FFF0000, number, 0)
    assert lib.seccomp_load(context) == 0
    os.execv(sys.argv[3], sys.argv[3:])
""")


@pytest.fixture
def sandboxed(tmp_path: Path, mailer_env: dict[str, str]):
    """Run a `mailer` command under a unit's system call filter, with the test's settings."""
    analyze = _tool("systemd-analyze")
    library = ctypes.util.find_library("seccomp")
    if library is None:
        pytest.skip("libseccomp is not installed (it comes with Debian's systemd package)")
    script = tmp_path / "sandbox.py"
    script.write_text(SANDBOX)
    mailer = str(Path(sys.executable).with_name("mailer"))

    def command(unit: str, *args: str) -> list[str]:
        calls = ",".join(_allowed_syscalls(analyze, unit))
        return [sys.executable, str(script), library, calls, mailer, *args]

    return command


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env={**os.environ, **env}, cwd=cwd, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_the_send_and_the_backup_run_under_their_units_filter(sandboxed, mailer_env,
                                                              tmp_path: Path) -> None:
    _run(sandboxed("mailer-send.service", "db", "upgrade"), mailer_env, tmp_path)
    _run(sandboxed("mailer-send.service", "subscribers", "add", "reader@example.org",
                   "--confirmed"), mailer_env, tmp_path)
    sent = _run(sandboxed("mailer-send.service", "send", "--issue", "latest", "--yes"),
                mailer_env, tmp_path)
    assert "1 sent" in sent.stdout or "sent 1" in sent.stdout, sent.stdout
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1
    _run(sandboxed("mailer-backup.service", "db", "backup", str(tmp_path / "backups") + "/"),
         mailer_env, tmp_path)
    assert list((tmp_path / "backups").glob("subscribers.backup-*.db"))


@pytest.mark.slow
def test_the_events_command_runs_under_its_units_filter(sandboxed, mailer_env,
                                                        tmp_path: Path) -> None:
    _run(sandboxed("mailer-events.service", "db", "upgrade"), mailer_env, tmp_path)
    replay = tmp_path / "events.jsonl"
    replay.write_text("")
    _run(sandboxed("mailer-events.service", "events", "replay", str(replay)), mailer_env,
         tmp_path)


@pytest.mark.slow
@pytest.mark.peer
def test_the_web_app_serves_under_its_units_filter(sandboxed, mailer_env, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            sandboxed("mailer-serve.service", "serve", "--host", "127.0.0.1", "--port", str(port)),
            env={**os.environ, **mailer_env}, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        from tests.plugins.web_peer import _wait_until_healthy

        _wait_until_healthy(process, url, log_path)
        page = httpx.post(f"{url}/subscribe", data={"email": "new-reader@example.org"}, timeout=10)
        assert page.status_code < 500, page.text
    finally:
        stop_process(process)
    assert "Traceback" not in log_path.read_text(errors="replace")
