"""Send benchmark: the dispatcher against a local SES v2 endpoint (tests/peers/fake_ses.py).

Prints, all measured in this one run:

1. rate: with no flags, as `mailer send` decides (the account's MaxSendRate from GetAccount,
   concurrency sized from the observed latency), against an endpoint whose account allows
   ``--rate`` (200/s) at each of ``--latencies`` (20, 50, 150 ms): the achieved rate as a share
   of the account's (goal >= 0.95 at 50 ms, few throttles), next to 16 fixed threads (the old
   default) and a naive sequential boto3 loop (about 1 / latency);
2. ceiling: the pipeline with no latency and no cap (ledger writes, personalisation, MIME, boto3)
   as a ratio of a bare boto3 loop sending the same prebuilt messages with the same number of
   threads (goal >= 0.8);
3. faults: the same pipeline against injected faults (throttling, 5xx, lost answers: SES takes
   the message and the connection drops before its answer), each row counting, at the endpoint,
   readers with two copies and readers with none, next to a naive loop that retries every error
   (what mailer did before issue 14) against the same lost answers;
4. bulk (issue 23 §3): with no flags and no latency, a bare 16-thread boto3 ``send_email``
   loop, today's one-call-per-reader path and the SendBulkEmail path (50 readers a call), in
   messages/s and as a ratio of the bare loop (goal: bulk >= 1,000/s and >= 2x bare), each with
   readers doubled and missed counted at the endpoint; the fault rows below run through the
   default transport, so SendBulkEmail too;
5. memory: peak RSS of a child process that queues and sends ``--memory-recipients`` (100,000)
   through the whole pipeline into a transport that builds each MIME message and drops it
   (goal < 150 MB; boto3 is imported and a client created, so its footprint counts too).

    .venv/bin/python benchmarks/send.py                    # the full run, about 4-5 minutes
    .venv/bin/python benchmarks/send.py --rate-recipients 1000 --memory-recipients 10000  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
}


# -- set-up ------------------------------------------------------------------------------------

def configure(workdir: Path, endpoint: str | None) -> None:
    os.environ.update(FAKE_AWS)
    os.environ["MAILER_DATABASE_URL"] = f"sqlite:///{workdir / 'bench.db'}"
    os.environ["MAILER_SECRET_KEY"] = "benchmark-secret-key-0123456789"
    os.environ["MAILER_OUTBOX_DIR"] = str(workdir / "outbox")
    if endpoint:
        os.environ["MAILER_TRANSPORT"] = "ses"
        os.environ["MAILER_SES_ENDPOINT_URL"] = endpoint
    from mailer.config import get_settings
    from mailer.store.db import reset_engines

    get_settings.cache_clear()
    reset_engines()


def add_readers(engine, count: int, offset: int = 0) -> None:
    from sqlalchemy import insert

    from mailer.domain import utcnow
    from mailer.store.models import Subscriber

    now = utcnow()
    step = 10_000
    with engine.begin() as connection:
        for start in range(offset, offset + count, step):
            connection.execute(insert(Subscriber.__table__), [
                dict(email=f"reader{n:06d}@example.org", status="active", created_at=now,
                     updated_at=now)
                for n in range(start, min(start + step, offset + count))])


def render_644():
    from mailer.config import get_settings
    from mailer.issues import load_issue_by_number
    from mailer.render import RenderOptions, render_issue

    settings = get_settings()
    issue = load_issue_by_number(settings.issues_dir, 644, site_url=settings.site_url)
    return render_issue(issue, RenderOptions.from_settings(settings))


def new_campaign(engine, rendered, issue_number: int):
    from mailer.store import ledger

    return ledger.begin_campaign(engine, issue_number=issue_number, subject=rendered.subject,
                                 transport="ses", content_sha256="0" * 64, again=True).campaign


def dispatch(engine, transport, rendered, campaign, *, rate: float, concurrency: int,
             quota=None, size_concurrency: bool = False):
    """(report, seconds); with ``size_concurrency`` also the in-flight limit it settled on."""
    from mailer.config import get_settings
    from mailer.dispatch import Dispatcher, MessageComposer, SendOptions

    composer = MessageComposer(rendered, get_settings(), campaign_id=campaign.id,
                               issue_number=campaign.issue_number)
    options = SendOptions(rate=rate, concurrency=concurrency, size_concurrency=size_concurrency)
    dispatcher = Dispatcher(engine, transport, composer, campaign.id, options, quota=quota)
    started = time.perf_counter()
    report = dispatcher.run()
    elapsed = time.perf_counter() - started
    return report, elapsed, dispatcher.gate.limit


def boto_client(endpoint: str, pool: int):
    import boto3
    from botocore.config import Config

    return boto3.client("sesv2", region_name="us-east-1", endpoint_url=endpoint,
                        config=Config(max_pool_connections=pool,
                                      retries={"total_max_attempts": 1, "mode": "standard"}))


def prebuilt_requests(rendered, count: int) -> list[dict]:
    """Finished send_email requests for ``count`` readers: the bare loop only calls boto3."""
    from mailer.config import get_settings
    from mailer.dispatch import MessageComposer
    from mailer.message import build_mime
    from mailer.store.ledger import ClaimedDelivery

    composer = MessageComposer(rendered, get_settings(), campaign_id=0, issue_number=644)
    requests = []
    for n in range(count):
        message = composer.compose(ClaimedDelivery(n + 1, n + 1, f"bare{n}@example.org", 0))
        mime = build_mime(message)
        requests.append({"FromEmailAddress": mime.envelope_from,
                         "Destination": {"ToAddresses": [mime.recipient]},
                         "Content": {"Raw": {"Data": mime.data}}})
    return requests


def on_threads(total: int, threads: int, work) -> float:
    """Run ``work(n)`` for each n below ``total`` on ``threads`` threads; the seconds it took."""
    counter = iter(range(total))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            work(n)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def bare_loop(client, requests: list[dict], total: int, threads: int) -> float:
    """Messages/s of ``threads`` plain loops calling send_email on prebuilt requests."""
    return total / on_threads(total, threads,
                              lambda n: client.send_email(**requests[n % len(requests)]))


# -- the three measurements --------------------------------------------------------------------

def measure_rate(args, fake, workdir: Path, rendered) -> list[dict]:
    """With no flags, as `mailer send` decides: the account's rate, concurrency sized from the
    observed latency. Next to 16 fixed threads (the old default) and a naive sequential loop."""
    from mailer.config import get_settings
    from mailer.dispatch import choose_concurrency, choose_rate
    from mailer.store.db import get_engine
    from mailer.transports import get_transport

    engine = get_engine(f"sqlite:///{workdir / 'rate.db'}")
    add_readers(engine, args.rate_recipients)
    threads, sized = choose_concurrency(None, None)
    transport = get_transport(get_settings(), max_connections=threads + 4)
    rows = []
    try:
        for latency in args.latencies:
            fake.reset()
            fake.control(latency=latency, rate=args.rate, max_send_rate=args.rate)
            quota = transport.preflight()
            rate, _ = choose_rate(quota, requested=None, configured=None, default=14)
            row = {"latency_ms": round(latency * 1000), "account_rate": rate}
            for label, (count, size) in (("sized", (threads, sized)), ("fixed16", (16, False))):
                fake.reset()
                fake.control(latency=latency, rate=args.rate, max_send_rate=args.rate)
                campaign = new_campaign(engine, rendered, 644)
                report, elapsed, in_flight = dispatch(
                    engine, transport, rendered, campaign, rate=rate, concurrency=count,
                    quota=quota, size_concurrency=size)
                row[f"{label}_share"] = round(report.sent / elapsed / rate, 3)
                row[f"{label}_throttled"] = fake.stats()["throttled"]
                row[f"{label}_in_flight"] = in_flight
            client = boto_client(fake.endpoint_url, 2)
            naive_count = max(20, int(args.naive_seconds / max(latency, 0.001)))
            naive = bare_loop(client, prebuilt_requests(rendered, 20), naive_count, threads=1)
            row["naive_share"] = round(naive / rate, 3)
            rows.append(row)
    finally:
        transport.close()
    return rows


def measure_ceiling(args, fake, workdir: Path, transport, rendered) -> dict:
    fake.control(latency=0, rate=0, max_send_rate=None, error_rate=0)
    client = boto_client(fake.endpoint_url, args.concurrency + 2)
    requests = prebuilt_requests(rendered, 50)
    bare_loop(client, requests, 200, threads=args.concurrency)  # warm connections and caches
    bare = bare_loop(client, requests, args.ceiling_messages, threads=args.concurrency)
    bare_sequential = bare_loop(client, requests, args.ceiling_messages // 2, threads=1)

    from mailer.store.db import get_engine

    engine = get_engine(f"sqlite:///{workdir / 'ceiling.db'}")  # exactly this audience
    add_readers(engine, args.ceiling_messages)
    campaign = new_campaign(engine, rendered, 644)
    report, elapsed, _ = dispatch(engine, transport, rendered, campaign, rate=1e9,
                                  concurrency=args.concurrency)
    pipeline = report.sent / elapsed
    breakdown = cost_breakdown(workdir, rendered, min(1000, args.ceiling_messages))
    return {"messages": report.sent, "pipeline_per_s": round(pipeline, 1),
            "bare_boto3_ms_per_message": round(1000 / bare_sequential, 2),
            "pipeline_us_per_message": breakdown,
            "bare_boto3_threads_per_s": round(bare, 1),
            "bare_boto3_sequential_per_s": round(bare_sequential, 1),
            "ratio_to_bare": round(pipeline / bare, 3)}


def measure_bulk(args, fake, workdir: Path, rendered) -> dict:
    """Issue 23 §3, one run against the same peer (no latency, no cap): a bare 16-thread boto3
    send_email loop, today's one-call-per-reader path and the SendBulkEmail path, both with no
    flags (the account's rate, concurrency sized as `mailer send` sizes it)."""
    from mailer.config import get_settings
    from mailer.dispatch import choose_concurrency, choose_rate
    from mailer.store.db import get_engine
    from mailer.transports.ses import SesTransport

    fake.reset()
    fake.control(latency=0, rate=0, max_send_rate=1e6)
    client = boto_client(fake.endpoint_url, 16 + 2)
    requests = prebuilt_requests(rendered, 50)
    bare_loop(client, requests, 200, threads=16)  # warm connections and caches
    bare = bare_loop(client, requests, args.bulk_messages, threads=16)
    settings = get_settings()
    threads, sized = choose_concurrency(None, None)
    row: dict = {"messages": args.bulk_messages, "bare_boto3_16_threads_per_s": round(bare, 1)}
    for label, bulk in (("single", False), ("bulk", True)):
        transport = SesTransport(sender=settings.from_, region=settings.ses_region,
                                 endpoint_url=fake.endpoint_url, max_connections=threads + 4,
                                 bulk=bulk)
        try:
            engine = get_engine(f"sqlite:///{workdir / f'bulk-{label}.db'}")
            add_readers(engine, args.bulk_messages)
            fake.reset()
            fake.control(latency=0, rate=0, max_send_rate=1e6)
            quota = transport.preflight()
            rate, _ = choose_rate(quota, requested=None, configured=None, default=14)
            campaign = new_campaign(engine, rendered, 644)
            report, elapsed, _ = dispatch(engine, transport, rendered, campaign, rate=rate,
                                          concurrency=threads, quota=quota,
                                          size_concurrency=sized)
            stats = fake.stats()
            copies = stats["per_recipient"]
            row[f"{label}_per_s"] = round(report.sent / elapsed, 1)
            row[f"{label}_ratio_to_bare"] = round(report.sent / elapsed / bare, 2)
            row[f"{label}_calls"] = stats["requests"]
            row[f"{label}_doubled"] = sum(1 for n in copies.values() if n > 1)
            row[f"{label}_missed"] = args.bulk_messages - len(copies)
        finally:
            transport.close()
    return row


def report_bulk(r: dict) -> None:
    print(f"bulk:    {r['messages']} readers, no latency, no flags; bare boto3 send_email, 16 "
          f"threads: {r['bare_boto3_16_threads_per_s']}/s")
    for label, name in (("single", "one SendEmail per reader (today)"),
                        ("bulk", "SendBulkEmail, 50 a call")):
        print(f"  {name:<34} {r[f'{label}_per_s']:>8}/s  = {r[f'{label}_ratio_to_bare']:.2f}x "
              f"bare  ({r[f'{label}_calls']} calls, {r[f'{label}_doubled']} doubled, "
              f"{r[f'{label}_missed']} missed)")
    print("  goal: bulk >= 1,000/s and >= 2x bare")


def cost_breakdown(workdir: Path, rendered, count: int) -> dict:
    """Microseconds per message of each step the pipeline adds to boto3, one thread, no network:
    where the gap between the pipeline and a bare boto3 loop comes from."""
    from mailer.config import get_settings
    from mailer.dispatch import MessageComposer
    from mailer.message import build_mime
    from mailer.store import ledger
    from mailer.store.db import get_engine

    engine = get_engine(f"sqlite:///{workdir / 'breakdown.db'}")
    add_readers(engine, count)
    campaign = new_campaign(engine, rendered, 644)
    rows = ledger.claim_batch(engine, campaign.id, "bench", count)
    composer = MessageComposer(rendered, get_settings(), campaign_id=campaign.id,
                               issue_number=644)
    spent = {"compose": 0.0, "ledger_writes": 0.0, "mime_in_transport": 0.0}
    for row in rows:
        t0 = time.perf_counter()
        message = composer.compose(row)
        t1 = time.perf_counter()
        ledger.start_sending(engine, row.id, "bench")
        t2 = time.perf_counter()
        build_mime(message)
        t3 = time.perf_counter()
        ledger.mark_sent(engine, row.id, "bench", "id")
        t4 = time.perf_counter()
        spent["compose"] += t1 - t0
        spent["ledger_writes"] += (t2 - t1) + (t4 - t3)
        spent["mime_in_transport"] += t3 - t2
    return {step: round(total / len(rows) * 1e6) for step, total in spent.items()}


# Linux carries a process's peak RSS into the program it starts (fork copies the counter, exec
# keeps it; see scale.py), so a child started from this process, hundreds of MB into the run,
# would report our peak as its own. A few-MB interpreter forks it instead.
SMALL_PARENT = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure_memory(args) -> dict:
    result = subprocess.run([sys.executable, "-I", "-S", "-c", SMALL_PARENT,
                             sys.executable, __file__, "--memory-child",
                             "--memory-recipients", str(args.memory_recipients),
                             "--concurrency", str(args.concurrency)],
                            capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"memory child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class MimeOnlyTransport:
    """Does everything the SES transport does before the network: builds the MIME bytes."""

    name = "mime-only"

    def __init__(self) -> None:
        from mailer.message import build_mime

        self._build = build_mime
        self._count = 0
        self._lock = threading.Lock()

    def preflight(self):
        return None

    def send(self, message) -> str:
        self._build(message)
        with self._lock:
            self._count += 1
            return f"m{self._count}"

    def close(self) -> None:
        pass


def memory_child(args) -> None:
    with tempfile.TemporaryDirectory(prefix="mailer-bench-mem-") as tmp:
        configure(Path(tmp), None)
        import boto3

        boto3.client("sesv2", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
        from mailer.config import get_settings
        from mailer.store.db import get_engine

        engine = get_engine(get_settings().database_url)
        rendered = render_644()
        add_readers(engine, args.memory_recipients)
        campaign = new_campaign(engine, rendered, 644)
        setup_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report, elapsed, _ = dispatch(engine, MimeOnlyTransport(), rendered, campaign,
                                      rate=1e9, concurrency=args.concurrency)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"recipients": args.memory_recipients, "sent": report.sent,
                          "seconds": round(elapsed, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
                          "peak_before_send_mb": round(setup_kb / 1024, 1)}))


# -- faults ------------------------------------------------------------------------------------

FAULTS = [  # (name, fake_ses options)
    ("none", {}),
    ("throttled: endpoint allows half the rate", {"rate": 100, "max_send_rate": 200}),
    ("5xx on 5 % of requests", {"error_rate": 0.05}),
    ("answer lost on 2 % (connection closed)", {"lose_answer_rate": 0.02}),
    ("answer lost on 2 % (connection reset)", {"lose_answer_rate": 0.02, "lose_how": "reset"}),
]


def measure_faults(args, fake, workdir: Path, transport, rendered) -> list[dict]:
    from mailer.domain import DeliveryStatus
    from mailer.store import ledger
    from mailer.store.db import get_engine

    engine = get_engine(f"sqlite:///{workdir / 'faults.db'}")
    add_readers(engine, args.fault_recipients)
    rows = []
    for name, options in FAULTS:
        fake.reset()
        fake.control(**{"latency": 0.02, "max_send_rate": 200, "seed": 14, **options})
        campaign = new_campaign(engine, rendered, 644)
        report, elapsed, _ = dispatch(engine, transport, rendered, campaign,
                                      rate=200.0, concurrency=args.concurrency)
        counts = ledger.count_by_status(engine, campaign.id)
        rows.append(fault_row(name, fake.stats(), args.fault_recipients, elapsed,
                              unknown=counts[DeliveryStatus.UNKNOWN],
                              failed=counts[DeliveryStatus.FAILED]))
    rows.append(naive_retry_row(args, fake, rendered))
    return rows


def fault_row(name: str, stats: dict, readers: int, elapsed: float, *, unknown: int,
              failed: int) -> dict:
    copies = stats["per_recipient"]
    return {"fault": name, "readers": readers, "accepted": stats["accepted"],
            "duplicates": sum(1 for n in copies.values() if n > 1),
            "missed": readers - len(copies) - failed, "unknown": unknown, "failed": failed,
            "answers_lost": stats["answers_lost"], "throttled": stats["throttled"],
            "errors": stats["errors"], "seconds": round(elapsed, 1)}


def naive_retry_row(args, fake, rendered) -> dict:
    """Baseline: 16 threads of boto3, each error retried until an answer comes (mailer's
    behaviour before issue 14 treated a lost answer as a temporary failure)."""
    from botocore.exceptions import BotoCoreError, ClientError

    fake.reset()
    fake.control(latency=0.02, max_send_rate=200, seed=14, lose_answer_rate=0.02)
    client = boto_client(fake.endpoint_url, args.concurrency + 2)
    template = prebuilt_requests(rendered, 1)[0]

    def send_retrying(n: int) -> None:
        request = dict(template, Destination={"ToAddresses": [f"naive{n}@example.org"]})
        for _ in range(5):
            try:
                client.send_email(**request)
                return
            except (BotoCoreError, ClientError):
                continue

    seconds = on_threads(args.fault_recipients, args.concurrency, send_retrying)
    return fault_row("baseline: naive loop retrying every error, 2 % lost", fake.stats(),
                     args.fault_recipients, seconds, unknown=0, failed=0)


def report_faults(rows: list[dict]) -> None:
    print(f"faults:  {rows[0]['readers']} readers per row, 20 ms latency, rate 200/s; copies "
          "counted per reader at the endpoint")
    print(f"  {'fault':<50} {'accepted':>8} {'dupl.':>6} {'missed':>6} {'unknown':>7} "
          f"{'lost':>5} {'429':>5} {'5xx':>5} {'s':>5}")
    for r in rows:
        print(f"  {r['fault']:<50} {r['accepted']:>8} {r['duplicates']:>6} {r['missed']:>6} "
              f"{r['unknown']:>7} {r['answers_lost']:>5} {r['throttled']:>5} {r['errors']:>5} "
              f"{r['seconds']:>5}")


# -- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="endpoint cap and --rate")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.02, 0.05, 0.15],
                        help="seconds per SendEmail, one rate run each")
    parser.add_argument("--rate-recipients", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--naive-seconds", type=float, default=3.0)
    parser.add_argument("--ceiling-messages", type=int, default=3000)
    parser.add_argument("--memory-recipients", type=int, default=100_000)
    parser.add_argument("--fault-recipients", type=int, default=1000)
    parser.add_argument("--bulk-messages", type=int, default=6000)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["rate", "ceiling", "bulk", "faults", "memory"])
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    from tests.plugins.ses_peer import start_fake_ses

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="mailer-bench-") as tmp, start_fake_ses() as fake:
        configure(Path(tmp), fake.endpoint_url)
        from mailer.config import get_settings
        from mailer.store.db import get_engine
        from mailer.transports import get_transport

        settings = get_settings()
        get_engine(settings.database_url)
        rendered = render_644()
        print(f"issue 644 rendered: {len(rendered.html.encode()) // 1024} KB of HTML")
        transport = get_transport(settings, max_connections=args.concurrency + 4)
        try:
            if "rate" not in args.skip:
                results["rate"] = measure_rate(args, fake, Path(tmp), rendered)
                report_rate(results["rate"], args)
            if "ceiling" not in args.skip:
                results["ceiling"] = measure_ceiling(args, fake, Path(tmp), transport, rendered)
                report_ceiling(results["ceiling"])
            if "bulk" not in args.skip:
                results["bulk"] = measure_bulk(args, fake, Path(tmp), rendered)
                report_bulk(results["bulk"])
            if "faults" not in args.skip:
                results["faults"] = measure_faults(args, fake, Path(tmp), transport, rendered)
                report_faults(results["faults"])
        finally:
            transport.close()
    if "memory" not in args.skip:
        results["memory"] = measure_memory(args)
        report_memory(results["memory"])
    print(json.dumps(results))


def report_rate(rows: list[dict], args) -> None:
    print(f"rate:    no flags, account allows {args.rate:g}/s, {args.rate_recipients} readers per "
          "run; achieved rate as a share of the account's (goal >= 0.95 at 50 ms, few 429)")
    print(f"  {'latency':>7}  {'sized: share':>12} {'429':>4} {'in flight':>9}   "
          f"{'16 threads: share':>17} {'429':>4}   {'naive loop: share':>17}")
    for r in rows:
        print(f"  {r['latency_ms']:>5}ms  {r['sized_share']:>12.3f} {r['sized_throttled']:>4} "
              f"{r['sized_in_flight']:>9}   {r['fixed16_share']:>17.3f} "
              f"{r['fixed16_throttled']:>4}   {r['naive_share']:>17.3f}")


def report_ceiling(r: dict) -> None:
    print(f"ceiling: pipeline {r['pipeline_per_s']}/s vs bare boto3 with the same threads "
          f"{r['bare_boto3_threads_per_s']}/s = {r['ratio_to_bare']:.2f} (goal >= 0.8); bare "
          f"sequential loop {r['bare_boto3_sequential_per_s']}/s "
          f"({r['bare_boto3_ms_per_message']} ms per message); the pipeline adds per message "
          + ", ".join(f"{step} {us} us" for step, us in r["pipeline_us_per_message"].items()))


def report_memory(r: dict) -> None:
    print(f"memory:  peak RSS {r['peak_rss_mb']} MB queueing and sending {r['recipients']} "
          f"recipients ({r['seconds']} s) (goal < 150 MB); {r['peak_before_send_mb']} MB "
          "before the first message (interpreter, render stack, boto3, the queued audience)")


if __name__ == "__main__":
    main()
