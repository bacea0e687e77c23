"""`mailer events`: SES notifications from other intakes than the web hook.

``replay FILE`` ingests saved notifications (JSON Lines), ``poll --queue-url URL`` drains an SQS
queue subscribed to the SNS topic. Both are the operator's own sources, so no SNS signature is
checked; everything else (dedup, mapping to ledger rows, suppression) is the web hook's processing.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from mailer.cli._app import (app, console, engine, err_console, examples, json_text, settings, shown,
                             with_options)
from mailer.errors import MailerError, StoreError
from mailer.events.apply import ApplyResult, ingest_document

events_app = typer.Typer(no_args_is_help=True,
                         help="SES events: replay saved notifications or poll an SQS queue.",
                         epilog=examples("mailer events replay ses-events.jsonl",
                                         'mailer events poll --queue-url "$QUEUE" --once'))
app.add_typer(events_app, name="events")

MAX_PROBLEMS_SHOWN = 50
SQS_HOST = re.compile(r"sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


@dataclass
class Report:
    result: ApplyResult = field(default_factory=ApplyResult)
    problems: list[str] = field(default_factory=list)  # "line 3: ..." / "message ab12: ..."
    handled: int = 0


def apply_text(text: str, report: Report, where: str) -> bool:
    """One notification (bare SES JSON or inside its SNS envelope); False if it was bad."""
    try:
        document = json.loads(text)
    except ValueError as error:
        report.problems.append(f"{where}: not JSON ({error.msg})")
        return False
    if not isinstance(document, dict):
        report.problems.append(f"{where}: not a JSON object")
        return False
    try:
        report.result.merge(ingest_document(engine(), document, settings()))
    except StoreError:
        raise  # the database, not the line: stop here, nothing is lost
    except MailerError as error:
        report.problems.append(f"{where}: {error}")
        return False
    report.handled += 1
    return True


def read_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each non-blank line; text None when it is not UTF-8."""
    try:
        stream = sys.stdin.buffer if str(path) == "-" else path.open("rb")
    except OSError as error:
        raise MailerError(f"cannot read {path}: {error.strerror}") from None
    with stream:
        for number, raw in enumerate(stream, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                yield number, None
                continue
            if text:
                yield number, text


def print_report(report: Report, *, as_json: bool, title: str) -> None:
    result = report.result
    if as_json:
        typer.echo(json_text({
            "handled": report.handled, "events": dict(result.recorded),
            "duplicates": result.duplicates, "unmatched": result.unmatched,
            "replayed_messages": result.replayed_messages,
            "ignored_messages": result.ignored_messages,
            "suppressed": result.suppressed, "problems": report.problems,
        }, indent=None))
        return
    table = Table(title=title, box=box.SIMPLE)
    table.add_column("event")
    table.add_column("new", justify="right")
    for kind, count in sorted(result.recorded.items()):
        table.add_row(shown(kind), str(count))
    table.add_row("[dim]already seen[/]", str(result.duplicates + result.replayed_messages))
    table.add_row("[dim]no ledger row[/]", str(result.unmatched))
    table.add_row("[dim]no event (confirmations)[/]", str(result.ignored_messages))
    console.print(table)
    for change in result.suppressed:
        console.print(f"  {shown(change)}", highlight=False)
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        err_console.print(f"[yellow]skipped[/] {shown(problem)}", highlight=False, soft_wrap=True)
    if len(report.problems) > MAX_PROBLEMS_SHOWN:
        err_console.print(f"... and {len(report.problems) - MAX_PROBLEMS_SHOWN} more problems")


@events_app.command("replay", short_help="Apply saved SES notifications from a file.",
                    epilog=examples("mailer events replay ses-events.jsonl",
                                    "mailer events replay - --json < ses-events.jsonl"))
def replay(
    file: Annotated[Path, typer.Argument(help="JSON Lines, one SES notification per line (bare "
                                              "or inside its SNS envelope); '-' reads stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Ingest saved SES notifications. Bad lines are reported with their number and skipped;
    lines seen before change nothing. Exits 1 when any line was bad."""
    from mailer.cli.progress import Progress, count_lines

    report = Report()
    with Progress("replayed", total=count_lines(file), unit="lines") as progress:
        for number, text in read_lines(file):
            progress.advance(number - progress.done)  # blank lines count as read too
            if text is None:
                report.problems.append(f"line {number}: not UTF-8 text")
                continue
            apply_text(text, report, f"line {number}")
    print_report(report, as_json=as_json, title=f"{shown(file)}: {report.handled} notifications")
    if report.problems:
        raise typer.Exit(1)


def region_of(queue_url: str, fallback: str) -> str:
    match = SQS_HOST.search(queue_url)
    return match.group(1) if match else fallback


def sqs_client(options: PollOptions):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs",
        region_name=options.region or region_of(options.queue_url, settings().ses_region),
        endpoint_url=options.endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=30),
    )


def receive(client, queue_url: str, count: int, wait: int) -> list[dict]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        reply = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=count,
                                       WaitTimeSeconds=wait)
    except ClientError as error:
        raise MailerError(f"SQS refused: {error.response['Error'].get('Message') or error}") \
            from None
    except BotoCoreError as error:
        raise MailerError(f"cannot read the SQS queue: {error}") from None
    return reply.get("Messages", [])


def delete(client, queue_url: str, message: dict) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    except (BotoCoreError, ClientError) as error:
        # applied already: when SQS hands it out again, the dedup makes it a no-op
        err_console.print(f"[yellow]warning:[/] could not delete message "
                          f"{shown(message.get('MessageId'))}: {shown(error)}", highlight=False)


@dataclass(frozen=True)
class PollOptions:
    queue_url: Annotated[str, typer.Option("--queue-url", help="The SQS queue subscribed to "
                                                             "the SES events topic.")]
    once: Annotated[bool, typer.Option("--once", help="Read one batch, then stop.")] = False
    max_messages: Annotated[int | None, typer.Option(
        "--max", min=1, help="Stop after this many messages.")] = None
    wait: Annotated[int, typer.Option("--wait", min=0, max=20,
                                      help="Long-poll seconds per receive.")] = 20
    endpoint_url: Annotated[str | None, typer.Option(
        "--endpoint-url", envvar="MAILER_SQS_ENDPOINT_URL",
        help="Another SQS endpoint (a local test server).")] = None
    region: Annotated[str | None, typer.Option(
        "--region", help="Defaults to the queue URL's region, else MAILER_SES_REGION.")] = None
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False


@events_app.command("poll", short_help="Apply SES notifications from an SQS queue.",
                    epilog=examples(
                        "QUEUE=https://sqs.us-east-1.amazonaws.com/123456789012/twir-events",
                        'mailer events poll --queue-url "$QUEUE"',
                        'mailer events poll --queue-url "$QUEUE" --once --json   # from cron'))
@with_options(PollOptions)
def poll(options: PollOptions) -> None:
    """Apply SES notifications from an SQS queue, deleting each message once it is applied.
    Messages that cannot be read stay on the queue (for its redrive policy) and are reported."""
    client = sqs_client(options)
    report = Report()
    try:
        drain(client, options, report)
    except KeyboardInterrupt:
        err_console.print("stopped")
    print_report(report, as_json=options.as_json,
                 title=f"{shown(options.queue_url)}: {report.handled} notifications")
    if report.problems:
        raise typer.Exit(1)


def drain(client, options: PollOptions, report: Report) -> None:
    """Receive, apply and delete messages until --max of them, or one batch with --once."""
    limit, queue_url = options.max_messages, options.queue_url
    seen = 0
    while limit is None or seen < limit:
        room = 10 if limit is None else min(10, limit - seen)
        messages = receive(client, queue_url, room, options.wait)
        for message in messages:
            seen += 1
            where = f"message {message.get('MessageId', '?')}"
            if apply_text(message.get("Body", ""), report, where):
                delete(client, queue_url, message)
        if options.once:
            break
