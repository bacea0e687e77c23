"""POST /manage/<token>/address ("Change my address", issue 26) to a free versus a taken address,
through the web app in process (FastAPI's TestClient): median milliseconds of each, and their
ratio taken/free. A ratio near 1.00 means the answer's timing does not tell whether the new
address is already on the list. The baseline in the same run is GET /healthz (no database).

TestClient returns only once the request's background work is done, so each figure includes the
mail that follows the answer (the link to a free address, the notice to a taken one): a served
reader gets the answer before that work, and the figures here are the stricter measure. Each
sample asks for a free and a taken address back to back, in random order, from a reader of its
own (a reader may ask three times an hour); the per-network and per-reader limits are counted as
usual, only with a ceiling the run cannot reach. The paired difference is within the bar when it
is at most 10 % of the free median (or 0.3 ms). Run:

    .venv/bin/python benchmarks/manage_timing.py [SAMPLES]
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-manage-timing-key-0123456789"


class NullTransport:
    """Accepts every message and keeps a count: the mail is built as for a real send."""

    name = "null"

    def __init__(self) -> None:
        self.sent = 0

    def preflight(self):
        return None

    def send(self, message) -> str:
        self.sent += 1
        return f"null-{self.sent}"

    def close(self) -> None:
        pass


def main(samples: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update({
            "MAILER_DATABASE_URL": f"sqlite:///{Path(folder) / 'subscribers.db'}",
            "MAILER_OUTBOX_DIR": str(Path(folder) / "outbox"), "MAILER_SECRET_KEY": SECRET,
        })
        from fastapi.testclient import TestClient
        from sqlalchemy import insert, select

        from mailer.config import get_settings
        from mailer.domain import utcnow
        from mailer.store.db import get_engine
        from mailer.store.models import Subscriber
        from mailer.tokens import make_manage_token
        from mailer.web.app import create_app
        from mailer.web.limiter import DatabaseWindowLimiter

        settings = get_settings()
        engine = get_engine(settings.database_url)
        warm = 20
        readers = samples + warm
        now = utcnow()
        with engine.begin() as connection:  # the readers who ask, and the taken addresses
            connection.execute(insert(Subscriber.__table__), [
                dict(email=email, status="active", created_at=now, updated_at=now)
                for n in range(readers)
                for email in (f"reader{n}@example.org", f"taken{n}@example.org")])
            ids = dict(connection.execute(select(Subscriber.__table__.c.email,
                                                 Subscriber.__table__.c.id)).all())
        pages = [f"/manage/{make_manage_token(SECRET, ids[f'reader{n}@example.org'])}/address"
                 for n in range(readers)]

        app = create_app(settings)
        transport = NullTransport()
        app.state.transport = transport
        for name, scope, window in (("manage_limiter", "manage", 60.0),
                                    ("address_mail_limiter", "address-mail", 3600.0)):
            setattr(app.state, name, DatabaseWindowLimiter(
                scope, 10**9, window, secret=SECRET, engine=lambda: get_engine(settings.database_url)))

        def timed(client, method: str, path: str, **kwargs) -> float:
            started = time.perf_counter()
            answer = client.request(method, path, **kwargs)
            elapsed = time.perf_counter() - started
            answer.raise_for_status()
            return elapsed

        times: dict[str, list[float]] = {"free": [], "taken": [], "healthz": []}
        with TestClient(app, base_url="http://testserver") as client:
            for n in range(readers):
                order = ["free", "taken", "healthz"]
                random.shuffle(order)
                for kind in order:
                    if kind == "healthz":
                        elapsed = timed(client, "GET", "/healthz")
                    else:
                        email = f"free{n}@example.net" if kind == "free" else f"taken{n}@example.org"
                        elapsed = timed(client, "POST", pages[n], data={"email": email})
                    if n >= warm:
                        times[kind].append(elapsed)
    medians = {kind: statistics.median(values) * 1000 for kind, values in times.items()}
    print(f"samples: {samples} of each (after {warm} warm-up), TestClient in process, SQLite; "
          f"{transport.sent} mails built and handed over")
    print(f"GET /healthz (baseline)          median {medians['healthz']:7.2f} ms")
    for kind in ("free", "taken"):
        print(f"POST /manage/…/address, {kind:5}    median {medians[kind]:7.2f} ms  "
              f"({medians[kind] / medians['healthz']:.2f}x baseline)")
    print(f"ratio taken/free: {medians['taken'] / medians['free']:.3f}")
    paired = statistics.median(t - f for t, f in zip(times["taken"], times["free"], strict=True))
    bar = max(0.1 * medians["free"], 0.3)
    print(f"paired difference taken - free: median {paired * 1000:+.2f} ms "
          f"({'within' if abs(paired * 1000) <= bar else 'OVER'} the {bar:.2f} ms bar)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
