"""`mailer render` and `mailer preview`: an issue → 644.html, 644.txt and 644.mjml on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from mailer.cli._app import (app, console, err_console, examples, settings, shown,
                             visible_controls)
from mailer.errors import MailerError

DEFAULT_OUT = Path("out")

IssueOption = typer.Option(None, "--issue", "-i", help="Issue number, looked up in MAILER_ISSUES_DIR.")
SourceOption = typer.Option(
    None, "--source", "-s", help="Render this file instead (TWiR Markdown, standard.site JSON or an HTML page)."
)
OutOption = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder the files are written to.")


@dataclass(frozen=True)
class Written:
    html: Path
    text: Path
    mjml: Path
    clipped: bool


@app.command("render", short_help="Render an issue to HTML, plaintext and MJML files.",
             epilog=examples(
                 "mailer render --issue 644             # out/644.html, 644.txt, 644.mjml",
                 "mailer render --issue latest --out build/",
                 "mailer render --source examples/2026-03-25-this-week-in-rust.md"))
def render(issue: str = IssueOption, source: Path = SourceOption, out: Path = OutOption) -> None:
    """Render an issue to HTML, plaintext and MJML files and report their sizes and warnings."""
    written = render_to_files(issue, source, out)
    if written.clipped:
        raise typer.Exit(1)


@app.command("preview", short_help="Render an issue and say which file to open.",
             epilog=examples("mailer preview --issue 644", "mailer preview --issue latest"))
def preview(issue: str = IssueOption, source: Path = SourceOption, out: Path = OutOption) -> None:
    """Render an issue like `mailer render` and say which file to open in a browser."""
    written = render_to_files(issue, source, out)
    console.print(f"open {shown(written.html.resolve().as_uri())} in a browser to see the mail",
                  highlight=False)
    console.print(f"plaintext part: {shown(written.text.resolve())}", highlight=False)
    console.print("the unsubscribe and manage links are placeholders until a send fills them in")
    if written.clipped:
        raise typer.Exit(1)


def render_to_files(issue_number: str | None, source: Path | None, out: Path) -> Written:
    from mailer.render import GMAIL_CLIP_BYTES, RenderOptions, render_issue

    config = settings()
    issue = load_requested_issue(issue_number, source, config)
    rendered = render_issue(issue, RenderOptions.from_settings(config))
    stem = output_stem(issue.number, issue_number, source)
    written = write_outputs(out, stem, rendered.html, rendered.text, rendered.mjml)
    html_bytes = rendered.html_bytes
    share = 100 * html_bytes / GMAIL_CLIP_BYTES
    console.print(shown(rendered.subject), highlight=False)
    console.print(f"  {shown(written.html)}  {html_bytes:,} bytes ({share:.1f}% of Gmail's "
                  f"{GMAIL_CLIP_BYTES:,}-byte clip)", highlight=False)
    console.print(f"  {shown(written.text)}  {rendered.text_bytes:,} bytes", highlight=False)
    console.print(f"  {shown(written.mjml)}  {len(rendered.mjml.encode()):,} bytes", highlight=False)
    for warning in rendered.warnings:
        err_console.print(f"warning: {visible_controls(warning)}", highlight=False, soft_wrap=True,
                          markup=False)
    clipped = any(warning.startswith("error:") for warning in rendered.warnings)
    return Written(written.html, written.text, written.mjml, clipped)


def load_requested_issue(issue_number: str | None, source: Path | None, config):
    from mailer.issues import load_issue
    from mailer.sources import load_issue_from_source

    if source is not None:
        return load_issue(source, site_url=config.site_url)
    if issue_number is None:
        raise MailerError("say which issue to render: --issue NUMBER or --source PATH")
    return load_issue_from_source(config, issue_number)


def output_stem(number: int | None, requested: str | None, source: Path | None) -> str:
    if number is not None:
        return str(number)
    if requested and requested.strip().isdigit():
        return requested.strip()
    return source.stem if source is not None else "issue"


def write_outputs(out: Path, stem: str, html: str, text: str, mjml: str) -> Written:
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = Written(out / f"{stem}.html", out / f"{stem}.txt", out / f"{stem}.mjml", False)
        paths.html.write_text(html, encoding="utf-8")
        paths.text.write_text(text, encoding="utf-8")
        paths.mjml.write_text(mjml, encoding="utf-8")
    except OSError as error:
        raise MailerError(f"cannot write to {out}: {error.strerror or error}") from None
    return paths
