"""Stored bytes for one SES bounce naming many recipients (issue 19, item 14b).

Each recipient's event row keeps a payload for the console's Events page. Storing the whole
notification on every row made one bounce for RECIPIENTS readers cost RECIPIENTS x its size
(3,000 recipients: hundreds of MB). Each row now keeps its recipient's part: the baseline
figure, printed in the same run, is what the whole payload on every row comes to. Run:

    .venv/bin/python benchmarks/event_storage.py [RECIPIENTS]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from mailer.config import get_settings  # noqa: E402
from mailer.events.apply import ingest_document  # noqa: E402
from mailer.store.db import get_engine, session  # noqa: E402
from mailer.store.models import DeliveryEventRecord  # noqa: E402
from tests.event_support import many_recipient_bounce  # noqa: E402


def main(recipients: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update({"MAILER_DATABASE_URL": f"sqlite:///{Path(folder) / 'events.db'}",
                           "MAILER_SECRET_KEY": "benchmark-secret-key-0123456789"})
        settings = get_settings()
        engine = get_engine(settings.database_url)
        payload = many_recipient_bounce(recipients)
        size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
        started = time.perf_counter()
        result = ingest_document(engine, payload, settings)
        seconds = time.perf_counter() - started
        with session(engine) as db:
            stored = db.exec(select(func.sum(func.length(DeliveryEventRecord.raw)))).one()[0]
        engine.dispose()
    print(f"one bounce for {recipients:,} recipients: payload {size / 1e3:,.1f} kB, "
          f"{result.total:,} events applied in {seconds:.2f} s")
    print(f"  whole payload on every event (before): {recipients * size / 1e6:,.1f} MB")
    print(f"  each recipient's part (now):           {stored / 1e6:,.1f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
