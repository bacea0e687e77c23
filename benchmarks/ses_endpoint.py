"""What the transport layer costs per message, against baselines run in the same process.

    .venv/bin/python -m benchmarks.ses_endpoint [--messages 2000] [--threads 16]

1. MIME building for a ~70 KB HTML newsletter: per message with one shared body, with a
   personal body per recipient, and the stdlib ``email`` package building the same message.
2. Sending through a local fake_ses (no latency, no cap): a bare boto3 loop posting prebuilt
   messages versus ``SesTransport.send`` building each one, both from the same thread pool.
3. fake_ses itself with 50 ms latency: how many requests per second it sustains.

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import boto3
from botocore.config import Config

from mailer.domain import OutgoingEmail
from mailer.message import build_mime
from mailer.transports.ses import SesTransport
from tests.plugins.ses_peer import FAKE_CREDENTIALS, start_fake_ses

SENDER = "This Week in Rust <newsletter@example.org>"


def newsletter_html() -> str:
    section = ('<tr><td style="padding:12px 24px;font-family:-apple-system,Segoe UI,sans-serif;'
               'font-size:16px;line-height:1.5;color:#1b1b1b">'
               '<a href="https://this-week-in-rust.org/blog/2026/04/22/this-week-in-rust-644/" '
               'style="color:#0b62b6">Crate of the week</a> — “zerocopy” makes unsafe code '
               'safe, café ✨ {n}</td></tr>\n')
    body = "".join(section.format(n=n) for n in range(190))
    return f"<!doctype html><html><body><table>{body}</table>{{UNSUB}}</body></html>"


def personalise(template: str, n: int) -> str:
    return template.replace("{UNSUB}", f'<a href="https://twir.example.org/u/{n:08d}.sig">x</a>')


def message(n: int, html: str, text: str) -> OutgoingEmail:
    return OutgoingEmail(
        to=f"reader{n}@example.com", sender=SENDER, subject="This Week in Rust 644",
        html=html, text=text,
        headers={"List-Unsubscribe": f"<https://twir.example.org/u/{n:08d}.sig>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                 "List-Id": "This Week in Rust <newsletter.example.org>",
                 "X-Mailer-Delivery": f"1-{n}"},
        tags={"campaign": "1", "delivery": str(n)})


def per_message_us(function, items) -> float:
    """CPU time per call: steadier than wall time on a machine shared with other work."""
    started = time.process_time()
    for item in items:
        function(item)
    return (time.process_time() - started) / len(items) * 1e6


def stdlib_build(email: OutgoingEmail) -> bytes:
    built = MIMEMultipart("alternative")
    built["From"], built["To"], built["Subject"] = email.sender, email.to, email.subject
    for name, value in email.headers.items():
        built[name] = value
    built.attach(MIMEText(email.text, "plain", "utf-8"))
    built.attach(MIMEText(email.html, "html", "utf-8"))
    return built.as_bytes()


def measure_building(count: int) -> None:
    template = newsletter_html()
    text = "This Week in Rust 644\n\n" + "A line of the plain text part.\n" * 300
    shared_html = personalise(template, 0)
    shared = [message(n, shared_html, text) for n in range(count)]
    personal = [message(n, personalise(template, n), text + str(n)) for n in range(count)]
    print(f"HTML body: {len(shared_html.encode()) / 1024:.0f} KB, text {len(text) / 1024:.0f} KB")
    shared_us = per_message_us(build_mime, shared)
    personal_us = per_message_us(build_mime, personal)
    stdlib_us = per_message_us(stdlib_build, personal[: max(50, count // 10)])
    print(f"build_mime, shared body:     {shared_us:8.0f} us CPU/message")
    print(f"build_mime, personal bodies: {personal_us:8.0f} us CPU/message")
    print(f"stdlib email (baseline):     {stdlib_us:8.0f} us CPU/message "
          f"({stdlib_us / personal_us:.1f}x slower than build_mime)")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process (Linux /proc), load-independent."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_pool(threads: int, function, items, peer_pid: int | None = None) -> tuple[float, ...]:
    """(messages per second, client CPU us per message, peer CPU us per message)."""
    started, cpu = time.perf_counter(), time.process_time()
    peer = process_cpu_seconds(peer_pid) if peer_pid else 0.0
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(function, items))
    wall = time.perf_counter() - started
    client_us = (time.process_time() - cpu) / len(items) * 1e6
    peer_us = (process_cpu_seconds(peer_pid) - peer) / len(items) * 1e6 if peer_pid else 0.0
    return len(items) / wall, client_us, peer_us


def measure_sending(count: int, threads: int) -> None:
    os.environ.update(FAKE_CREDENTIALS)
    template = newsletter_html()
    text = "This Week in Rust 644\n\n" + "A line of the plain text part.\n" * 300
    emails = [message(n, personalise(template, n), text) for n in range(count)]
    with start_fake_ses() as endpoint:
        client = boto3.client(
            "sesv2", region_name="us-east-1", endpoint_url=endpoint.endpoint_url,
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=threads + 4))
        prebuilt = [build_mime(e) for e in emails]

        def bare(mime) -> None:
            client.send_email(FromEmailAddress=mime.envelope_from,
                              Destination={"ToAddresses": [mime.recipient]},
                              Content={"Raw": {"Data": mime.data}})

        transport = SesTransport(sender=SENDER, endpoint_url=endpoint.endpoint_url,
                                 max_connections=threads + 4)
        timed_pool(threads, bare, prebuilt[:100])  # warm both connection pools
        timed_pool(threads, transport.send, emails[:100])
        bare_rate, bare_cpu, peer_cpu = timed_pool(threads, bare, prebuilt, endpoint.pid)
        rate, cpu, _ = timed_pool(threads, transport.send, emails, endpoint.pid)
        print(f"bare boto3, prebuilt ({threads} threads): {bare_rate:7.0f} messages/s, "
              f"{bare_cpu:5.0f} us CPU/message")
        print(f"SesTransport.send, building each:    {rate:7.0f} messages/s, "
              f"{cpu:5.0f} us CPU/message (throughput ratio {rate / bare_rate:.2f}, "
              f"CPU ratio {bare_cpu / cpu:.2f} of bare boto3)")
        print(f"fake_ses CPU per request (~{len(prebuilt[0].data) // 1024} KB raw): "
              f"{peer_cpu:5.0f} us, so one core serves about {1e6 / peer_cpu:.0f} requests/s")
        transport.close()
        client.close()

    with start_fake_ses("--latency", "0.05") as endpoint:
        client = boto3.client(
            "sesv2", region_name="us-east-1", endpoint_url=endpoint.endpoint_url,
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=64))
        small = build_mime(message(0, "<p>hi</p>", "hi"))

        def tiny(_: int) -> None:
            client.send_email(Content={"Raw": {"Data": small.data}},
                              Destination={"ToAddresses": [small.recipient]})

        rate, _, _ = timed_pool(64, tiny, range(min(count, 1500)))
        print(f"fake_ses with 50 ms latency, 64 threads, small messages: {rate:7.0f} requests/s "
              f"(ideal {64 / 0.05:.0f})")
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    measure_building(min(args.messages, 1000))
    measure_sending(args.messages, args.threads)


if __name__ == "__main__":
    main()
