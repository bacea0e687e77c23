"""How the mail holds in clients that ignore part of its CSS (issue 24), issue by issue.

Run: .venv/bin/python benchmarks/clients.py [ISSUE_FILE ...]

With no files: the project's 644 example and, where ../shared/twir/content is beside the
project, three old issues (2013, 2015, 2018). For each issue it prints the HTML size against
Gmail's clip, the inbox preview line, the contents line, SpamAssassin's local score of the
whole message (when Debian's ``spamassassin`` is installed) and, in headless Chromium, the
document width at 320 and 375 px as sent and under each simulated client. The baseline is
the same mail as sent: a client column wider than the viewport is a mail that scrolls sideways
there. Screenshots (light and dark, 375 px) go to benchmarks/output/clients/ to look at.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.config import load_settings  # noqa: E402
from mailer.dispatch.compose import MessageComposer  # noqa: E402
from mailer.issues import load_issue  # noqa: E402
from mailer.message import build_mime  # noqa: E402
from mailer.render import GMAIL_CLIP_BYTES, RenderOptions, render_issue  # noqa: E402
from tests.email_clients import CLIENTS  # noqa: E402

SHARED = ROOT.parent / "shared" / "twir" / "content"
OLD = ["2013-06-07-this-week-in-rust.markdown", "2015-01-02-this-week-in-rust.md",
       "2018-04-03-this-week-in-rust.md"]
WIDTHS = (320, 375)
OUTPUT = ROOT / "benchmarks" / "output" / "clients"
STATUS = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", re.MULTILINE)
CONTENTS = re.compile(r'<p[^>]*class="toc"[^>]*>(.*?)</p>', re.DOTALL)


def default_issues() -> list[Path]:
    issues = [ROOT / "examples" / "2026-03-25-this-week-in-rust.md"]
    if SHARED.is_dir():
        issues += [SHARED / name for name in OLD if (SHARED / name).is_file()]
    return issues


def settings():
    os.environ.setdefault("MAILER_SECRET_KEY", "benchmark-only-" + "x" * 40)
    return load_settings()


def whole_message(rendered, config) -> bytes:
    composer = MessageComposer(rendered, config, campaign_id=1, issue_number=rendered.issue.number)
    return build_mime(composer.compose_test("reader@example.org", 1)).data


def spam_score(message: bytes) -> str:
    path = shutil.which("spamassassin")
    if not path:
        return "n/a (spamassassin not installed)"
    with tempfile.TemporaryDirectory() as home:
        done = subprocess.run([path, "-L", "-t", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0",
                               f"--prefspath={home}/user_prefs"], input=message,
                              capture_output=True, timeout=240, env={**os.environ, "HOME": home})
    found = STATUS.search(done.stdout.decode("utf-8", "replace"))
    return found[1] if found else "n/a (no X-Spam-Status)"


def widths(html: str, stem: str) -> dict[str, dict[int, int]]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return {}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    found: dict[str, dict[int, int]] = {}
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        for client, strip in CLIENTS.items():
            path = Path(folder) / f"{client}.html"
            path.write_text(strip(html), encoding="utf-8")
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 800})
                page.goto(path.as_uri())
                found.setdefault(client, {})[width] = page.evaluate(
                    "document.documentElement.scrollWidth")
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.screenshot(path=str(OUTPUT / f"{stem}-{client}-{scheme}.png"),
                                clip={"x": 0, "y": 0, "width": 375, "height": 2400})
            page.emulate_media(color_scheme="light")
        browser.close()
    return found


def report(path: Path) -> None:
    config = settings()
    rendered = render_issue(load_issue(path), RenderOptions.from_settings(config))
    message = whole_message(rendered, config)
    size = len(rendered.html.encode("utf-8"))
    contents = CONTENTS.search(rendered.html)
    print(f"\n== {path.name}: issue {rendered.issue.number}")
    print(f"HTML part      {size:,} bytes ({size / GMAIL_CLIP_BYTES:.0%} of Gmail's clip)")
    print(f"preview line   {rendered.preheader!r}")
    line = re.sub(r"<[^>]+>|\s+", " ", contents[1]).strip() if contents else "-"
    print(f"contents line  {line}")
    print(f"SpamAssassin   {spam_score(message)} (local rules; a default install refuses 5.0)")
    print_widths(widths(rendered.html, path.stem))


def baseline() -> None:
    """TWiR's current email for 644, under the same clients: what the figures above improve on."""
    current = SHARED.parent / "email-reference" / "644-current-email.html"
    if not current.is_file():
        return
    html = current.read_text(encoding="utf-8")
    print(f"\n== baseline: TWiR's current 644 email ({len(html.encode()):,} bytes)")
    print_widths(widths(html, "baseline-644-current"))


def print_widths(table: dict[str, dict[int, int]]) -> None:
    if not table:
        print("widths         n/a (chromium not installed)")
        return
    print(f"{'client':<18}" + "".join(f"{w:>8} px" for w in WIDTHS))
    for client, by_width in table.items():
        cells = "".join(f"{by_width[w]:>8}{'!' if by_width[w] > w else ' '}  " for w in WIDTHS)
        print(f"{client:<18}{cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issues", nargs="*", type=Path)
    args = parser.parse_args()
    for path in args.issues or default_issues():
        report(path)
    if not args.issues:
        baseline()
    print(f"\nscreenshots: {OUTPUT}  ('!' marks a width over the viewport)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
