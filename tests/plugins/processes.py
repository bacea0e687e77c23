"""Helpers the peer fixtures share: a free port, and stopping a peer process for good."""

from __future__ import annotations

import socket
import subprocess


def stop_process(process: subprocess.Popen) -> None:
    """Ask the peer to stop, and kill it when it does not within ten seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
