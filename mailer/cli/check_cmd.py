"""`mailer check`: the lint gate for an issue's pull request (see :mod:`mailer.check`)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import typer

from mailer.cli._app import OptionMisuse, app, console, examples, settings, visible_controls
from mailer.errors import MailerError, NotAnIssueNumber


@app.command("check", short_help="Lint issues before readers see them; exit 1 on errors.",
             epilog=examples("mailer check content/2026-03-25-this-week-in-rust.md",
                             "mailer check --issue latest --out rendered/",
                             "mailer check content/*.md --json"))
def check(
    paths: list[Path] = typer.Argument(None, help="Issue files to check (TWiR Markdown, a record, a page)."),
    issue: str | None = typer.Option(None, "--issue", "-i", help="Check issue N (or 'latest') from MAILER_ISSUES_DIR."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    html_budget: int | None = typer.Option(None, "--html-budget", min=1024, metavar="BYTES", help="Largest HTML part in bytes (default MAILER_CHECK_HTML_BUDGET)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write each rendered issue (N.html, N.txt) here."),
    accept: Path | None = typer.Option(None, "--accept", metavar="FILE", help="The warnings accepted as standard (default: the nearest mailer-check.toml above each issue)."),
) -> None:
    """Render issues and report what would reach readers broken; exit 1 on any error."""
    from mailer.check import CheckOptions, check_paths
    from mailer.render import RenderOptions

    config = settings()
    files = list(paths or []) + issue_files(issue, Path(config.issues_dir))
    if not files:
        raise OptionMisuse("say what to check: mailer check PATH… or mailer check --issue N")
    for path in files:
        if not path.is_file():
            raise MailerError(f"no such issue file: {path}")
    if accept is not None and not accept.is_file():
        raise MailerError(f"--accept: no such file: {accept}")
    options = CheckOptions(RenderOptions.from_settings(config), html_budget or config.check_html_budget,
                           accept)
    checked = check_paths(files, options)
    if out is not None:
        write_rendered(checked, out)
    report(checked, as_json)
    if any(item.errors for item in checked):
        raise typer.Exit(1)


def issue_files(issue: str | None, issues_dir: Path) -> list[Path]:
    """The file(s) claiming issue N: two files claiming it are both checked, and both flagged."""
    if issue is None:
        return []
    from mailer.check import claimed_numbers
    from mailer.errors import AmbiguousIssue
    from mailer.issues import find_issue_file, latest_issue_number

    text = issue.strip()
    number = latest_issue_number(issues_dir) if text.lower() == "latest" else None
    if number is None:
        if not text.isascii() or not text.isdigit():
            raise NotAnIssueNumber(f"{issue!r} is not an issue number: give a number such as 644, or 'latest'")
        number = int(text)
    try:
        return [find_issue_file(issues_dir, number)]
    except AmbiguousIssue:
        return [path for claimed, path in claimed_numbers(issues_dir) if claimed == number]


def report(checked, as_json: bool) -> None:
    findings = [finding for item in checked for finding in item.findings]
    if as_json:
        payload = {
            "issues": [{"path": str(item.path), "number": item.number, "errors": item.errors,
                        "warnings": len(item.findings) - item.errors,
                        "accepted": len(item.accepted),
                        "accepted_by": str(item.accepted_by) if item.accepted_by else None,
                        "html_bytes": item.rendered.html_bytes if item.rendered else None}
                       for item in checked],
            "findings": [finding.as_dict() for finding in findings],
            "accepted": [finding.as_dict() for item in checked for finding in item.accepted],
        }
        print(runner_inert(json.dumps(payload, indent=2)))
        return
    # Findings quote the issue: control characters are written out, so each is one plain line.
    lines = [visible_controls(finding.as_line()) for finding in findings]
    if lines and os.environ.get("GITHUB_ACTIONS") == "true":
        print_for_github(lines, [visible_controls(f.as_github_annotation()) for f in findings])
    else:
        for line in lines:
            print(line)
    errors = sum(item.errors for item in checked)
    console.print(f"{errors} error{'s' * (errors != 1)}, {len(findings) - errors} warning"
                  f"{'s' * (len(findings) - errors != 1)} in {len(checked)} issue"
                  f"{'s' * (len(checked) != 1)}{_accepted_note(checked)}", highlight=False,
                  soft_wrap=True)


def _accepted_note(checked) -> str:
    """"; 7 accepted as standard by content/mailer-check.toml", so nothing is hidden silently."""
    count = sum(len(item.accepted) for item in checked)
    if not count:
        return ""
    sources = sorted({str(item.accepted_by) for item in checked if item.accepted})
    return (f"; {count} warning{'s' * (count != 1)} accepted as standard by "
            f"{visible_controls(', '.join(sources))}")


def print_for_github(lines: list[str], annotations: list[str]) -> None:
    """The readable lines with the runner's command processing stopped (a link to
    ``…/##[add-mask]…`` would be obeyed anywhere in a line), then the annotations, each one
    escaped command of our own."""
    token = secrets.token_hex(16)  # unguessable: the issue cannot print it to resume commands
    print(f"::stop-commands::{token}")
    for line in lines:
        print(line)
    print(f"::{token}::")
    for annotation in annotations:
        print(annotation)


def runner_inert(text: str) -> str:
    """JSON the GitHub runner reads as text: ``##[`` would start one of its older commands
    anywhere in a line, so its bracket is written as the JSON escape it equals."""
    return text.replace("##[", "##\\u005b")


def write_rendered(checked, out: Path) -> None:
    from mailer.cli.render_cmd import output_stem, write_outputs

    for item in checked:
        if item.rendered is not None:
            stem = output_stem(item.number, None, item.path)
            write_outputs(out, stem, item.rendered.html, item.rendered.text, item.rendered.mjml)
