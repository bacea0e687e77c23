"""POST /manage ("Mail me my link", issue 26) for an address on the list versus one that is not,
through the web app in process (FastAPI's TestClient): median milliseconds of each, and their
ratio known/unknown. A ratio near 1.00 means the answer's timing does not tell whether the
address reads the newsletter. The baseline in the same run is GET /healthz (no database).

TestClient returns only once the request's background work is done, so each figure includes
what follows the answer (the mailbox's allowance, the lookup, the mail built, and for a known
address handed over): a served reader gets the answer before that work, so the figures here
are the stricter measure. Each sample asks for a known and an unknown address back to back, in
random order, each a mailbox of its own; the per-network and per-mailbox limits are counted as
usual, only with a ceiling the run cannot reach. The paired difference is within the bar when
it is at most 10 % of the unknown median (or 0.3 ms). Run:

    .venv/bin/python benchmarks/link_timing.py [SAMPLES]
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from manage_timing import NullTransport

SECRET = "bench-link-timing-key-0123456789ab"


def main(samples: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update({
            "MAILER_DATABASE_URL": f"sqlite:///{Path(folder) / 'subscribers.db'}",
            "MAILER_OUTBOX_DIR": str(Path(folder) / "outbox"), "MAILER_SECRET_KEY": SECRET,
        })
        from fastapi.testclient import TestClient
        from sqlalchemy import insert

        from mailer.config import get_settings
        from mailer.domain import utcnow
        from mailer.store.db import get_engine
        from mailer.store.models import Subscriber
        from mailer.web.app import create_app
        from mailer.web.limiter import DatabaseWindowLimiter

        settings = get_settings()
        engine = get_engine(settings.database_url)
        warm = 20
        rounds = samples + warm
        now = utcnow()
        with engine.begin() as connection:
            connection.execute(insert(Subscriber.__table__), [
                dict(email=f"reader{n}@example.org", status="active", created_at=now,
                     updated_at=now) for n in range(rounds)])

        app = create_app(settings)
        transport = NullTransport()
        app.state.transport = transport
        for name, scope, window in (("manage_limiter", "manage", 60.0),
                                    ("link_request_limiter", "manage-link", 3600.0),
                                    ("link_mail_limiter", "manage-link-mail", 3600.0)):
            setattr(app.state, name, DatabaseWindowLimiter(
                scope, 10**9, window, secret=SECRET, engine=lambda: get_engine(settings.database_url)))

        def timed(client, method: str, path: str, **kwargs) -> float:
            started = time.perf_counter()
            answer = client.request(method, path, **kwargs)
            elapsed = time.perf_counter() - started
            answer.raise_for_status()
            return elapsed

        times: dict[str, list[float]] = {"known": [], "unknown": [], "healthz": []}
        with TestClient(app, base_url="http://testserver") as client:
            for n in range(rounds):
                order = ["known", "unknown", "healthz"]
                random.shuffle(order)
                for kind in order:
                    if kind == "healthz":
                        elapsed = timed(client, "GET", "/healthz")
                    else:
                        email = f"reader{n}@example.org" if kind == "known" else f"stranger{n}@example.net"
                        elapsed = timed(client, "POST", "/manage", data={"email": email})
                    if n >= warm:
                        times[kind].append(elapsed)
    medians = {kind: statistics.median(values) * 1000 for kind, values in times.items()}
    print(f"samples: {samples} of each (after {warm} warm-up), TestClient in process, SQLite; "
          f"{transport.sent} mails handed over")
    print(f"GET /healthz (baseline)      median {medians['healthz']:7.2f} ms")
    for kind in ("known", "unknown"):
        print(f"POST /manage, {kind:7}       median {medians[kind]:7.2f} ms  "
              f"({medians[kind] / medians['healthz']:.2f}x baseline)")
    print(f"ratio known/unknown: {medians['known'] / medians['unknown']:.3f}")
    paired = statistics.median(k - u for k, u in zip(times["known"], times["unknown"], strict=True))
    bar = max(0.1 * medians["unknown"], 0.3)
    print(f"paired difference known - unknown: median {paired * 1000:+.2f} ms "
          f"({'within' if abs(paired * 1000) <= bar else 'OVER'} the {bar:.2f} ms bar)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
