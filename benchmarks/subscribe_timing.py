"""POST /subscribe for new versus known addresses against the real server (uvicorn, in a thread):
median milliseconds of each, and the ratio new/known. A ratio near 1.00 means the answer's timing
does not tell who is subscribed. The baseline in the same run is GET /healthz (no database).

Each request uses a fresh connection, and requests are spaced so the work done after an answer
(the subscriber row, the confirmation mail) is not counted in the next one. Each sample measures
a new and a known address back to back, so the machine's changing load cancels out of their paired
difference; the figures are within the bar when it is at most 10 % of the known median (or
0.3 ms). This was tests/test_web_timing.py, a minute-long timed assertion: timing is measured
here, not asserted in the tests (issue 22). Run:

    .venv/bin/python benchmarks/subscribe_timing.py [SAMPLES]
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(folder: Path) -> tuple[str, object]:  # (url, stop)
    os.environ.update({
        "MAILER_DATABASE_URL": f"sqlite:///{folder / 'subscribers.db'}",
        "MAILER_OUTBOX_DIR": str(folder / "outbox"), "MAILER_SECRET_KEY": "bench-subscribe-timing-key-0123456789",
        "MAILER_SUBSCRIBE_RATE_PER_IP": "1000000", "MAILER_CONFIRM_MAILS_PER_HOUR": "1000000",
        "MAILER_CONFIRM_MAILS_PER_DOMAIN": "1000000", "MAILER_CONFIRM_MAILS_PER_MAILBOX": "1000000",
        "MAILER_CONFIRM_MAILS_PER_NETWORK": "1000000",
    })
    import uvicorn

    port = free_port()
    config = uvicorn.Config("mailer.web.app:create_app", factory=True, host="127.0.0.1", port=port,
                            log_level="warning", http="mailer.web.server:HeaderTimeoutH11Protocol")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/healthz")
            return url, lambda: (setattr(server, "should_exit", True), thread.join(30))
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def timed(method: str, url: str, **kwargs) -> float:
    with httpx.Client(timeout=10) as client:
        started = time.perf_counter()
        client.request(method, url, **kwargs).raise_for_status()
        return time.perf_counter() - started


def main(samples: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url, stop = start_server(Path(folder))
        known = [f"known{n}@example.org" for n in range(20)]
        for address in known:  # pending and just mailed: a repeat changes nothing
            timed("POST", f"{url}/subscribe", json={"email": address})
        for n in range(20):  # warm up both paths
            timed("POST", f"{url}/subscribe", json={"email": f"warm{n}@example.org"})
            timed("POST", f"{url}/subscribe", json={"email": known[n % len(known)]})
        times: dict[str, list[float]] = {"new": [], "known": [], "healthz": []}
        for n in range(samples):
            order = ["new", "known", "healthz"]
            random.shuffle(order)
            for kind in order:
                time.sleep(0.03)
                if kind == "healthz":
                    times[kind].append(timed("GET", f"{url}/healthz"))
                else:
                    address = f"new{n}@example.net" if kind == "new" else known[n % len(known)]
                    times[kind].append(timed("POST", f"{url}/subscribe", json={"email": address}))
        stop()
    medians = {kind: statistics.median(values) * 1000 for kind, values in times.items()}
    print(f"samples: {samples} of each, fresh connection per request")
    print(f"GET /healthz (baseline)   median {medians['healthz']:7.2f} ms")
    print(f"POST /subscribe, new      median {medians['new']:7.2f} ms  "
          f"({medians['new'] / medians['healthz']:.2f}x baseline)")
    print(f"POST /subscribe, known    median {medians['known']:7.2f} ms  "
          f"({medians['known'] / medians['healthz']:.2f}x baseline)")
    print(f"ratio new/known: {medians['new'] / medians['known']:.3f}")
    paired = statistics.median(new - old for new, old in zip(times["new"], times["known"], strict=True))
    bar = max(0.1 * medians["known"], 0.3)
    print(f"paired difference new - known: median {paired * 1000:+.2f} ms "
          f"({'within' if abs(paired * 1000) <= bar else 'OVER'} the {bar:.2f} ms bar)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
