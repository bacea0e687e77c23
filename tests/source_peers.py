"""The issue-source peers (a static site, a fake ATProto PDS) run as subprocesses, and the
fixture files they serve (fixtures/sources). FIXTURES here is that folder, not conftest's."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.processes import stop_process


ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "sources"
DID = "did:plc:twirtestpublication"


@dataclass
class Peer:
    url: str
    root: Path
    log: Path
    process: subprocess.Popen

    def requests(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def start_peer(module: str, *args: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        stop_process(process)
        pytest.fail(f"{module} did not start: {process.stderr.read()}")
    return process
