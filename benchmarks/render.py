"""How long each render stage takes for an issue the size of 644, and how big the mail is.

Run: .venv/bin/python benchmarks/render.py [ISSUE_FILE] [--repeat N]

Prints the median time of each stage (Markdown, clean-up, Jinja + MJML compile, inlining, the
final allow-list pass over the finished HTML, plaintext), the output sizes, and, for the inlining stage, premailer against css_inline on the
same document in the same run, with ratios against premailer as the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import css_inline

from mailer.config import load_settings
from mailer.issues import load_issue
from mailer.render import GMAIL_CLIP_BYTES, RenderOptions, render_issue
from mailer.render.allowlist import enforce_allow_list
from mailer.render.body import build_body, markdown_to_html
from mailer.render.mjml import HTML_STYLE_TAG, compile_mjml, inline_only, split_inline_styles
from mailer.render.pipeline import (
    finish_document,
    issue_web_url,
    render_template,
    render_text,
    template_context,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ISSUE = ROOT / "examples" / "2026-03-25-this-week-in-rust.md"
TWIR_CURRENT_644_BYTES = 88_783  # ../shared/twir/email-reference/644-current-email.html


def median_ms(action, repeat: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings), result


def css_inline_only(html: str, css: str) -> str:
    """The same job as mailer's inline_only, done by css_inline: inline ``css`` only."""
    inliner = css_inline.CSSInliner(keep_style_tags=True, keep_at_rules=True, load_remote_stylesheets=False,
                                    extra_css=css)
    # css_inline has no "ignore this block": hide the document's own sheets from it.
    hidden = HTML_STYLE_TAG.sub('<style data-css-inline="ignore"', html)
    return inliner.inline(hidden)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("issue", nargs="?", type=Path, default=DEFAULT_ISSUE)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    options = RenderOptions.from_settings(load_settings())
    issue = load_issue(args.issue)
    warnings: list[str] = []
    print(f"issue: {args.issue.name} ({len(issue.body.encode()):,} bytes of source), "
          f"median of {args.repeat} runs")

    t_markdown, fragment = median_ms(lambda: markdown_to_html(issue.body), args.repeat)
    t_clean, body = median_ms(lambda: build_body(fragment, "html", options.site_url), args.repeat)
    web_url = issue_web_url(issue, options, warnings)
    context = template_context(issue, options, body, web_url)

    def template_and_mjml() -> tuple[str, str, str]:
        source = render_template(options.templates_dir, context)
        without_inline, css = split_inline_styles(source)
        return source, compile_mjml(without_inline), css

    t_mjml, (mjml_source, compiled, css) = median_ms(template_and_mjml, args.repeat)
    t_premailer, html = median_ms(lambda: finish_document(inline_only(compiled, css)), args.repeat)
    t_css_inline, html_ci = median_ms(lambda: finish_document(css_inline_only(compiled, css)),
                                      args.repeat)
    t_allow, _ = median_ms(lambda: enforce_allow_list(html), args.repeat)
    t_text, text = median_ms(
        lambda: render_text(issue, options, body, web_url, context["issue_line"]), args.repeat)
    t_total, rendered = median_ms(lambda: render_issue(issue, options), max(3, args.repeat // 3))

    stages = [("markdown (Python-Markdown)", t_markdown), ("clean-up (bs4)", t_clean), ("jinja + mjml compile", t_mjml),
              ("inline (premailer)", t_premailer), ("allow-list pass", t_allow), ("plaintext", t_text)]
    staged = sum(t for _, t in stages)
    print(f"\n{'stage':<28}{'median ms':>10}{'share':>8}")
    for name, ms in stages:
        print(f"{name:<28}{ms:>10.2f}{100 * ms / staged:>7.1f}%")
    print(f"{'sum of stages':<28}{staged:>10.2f}")
    print(f"{'render_issue end to end':<28}{t_total:>10.2f}")

    print("\ninlining, same document, same run (baseline: premailer)")
    print(f"{'premailer':<26}{t_premailer:>10.2f} ms  {len(html.encode()):>8,} bytes  1.00x")
    print(f"{'css_inline':<26}{t_css_inline:>10.2f} ms  {len(html_ci.encode()):>8,} bytes  "
          f"{t_premailer / t_css_inline:.2f}x faster")

    html_bytes = rendered.html_bytes
    print("\noutput")
    print(f"{'html':<26}{html_bytes:>10,} bytes  {100 * html_bytes / GMAIL_CLIP_BYTES:.1f}% of "
          f"Gmail's clip; {html_bytes / TWIR_CURRENT_644_BYTES:.2f}x TWiR's current 644 mail "
          f"({TWIR_CURRENT_644_BYTES:,})")
    print(f"{'text':<26}{rendered.text_bytes:>10,} bytes")
    print(f"{'mjml':<26}{len(mjml_source.encode()):>10,} bytes")
    print(f"warnings: {len(rendered.warnings)}")
    for warning in rendered.warnings:
        print(f"  {warning}")


if __name__ == "__main__":
    sys.exit(main())
