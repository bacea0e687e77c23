"""Issue 25 §2's proof in headless Chromium: an editor opens the real preview mail from the
outbox, clicks Hold the send, presses the page's button; the timer then sends nothing; the
operator presses Release on the console's issue page; the timer sends once. The hold and
preview pages read at 320 px in dark mode with no CSP violation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.mailer_cli import mailer, outbox

pytestmark = [pytest.mark.browser, pytest.mark.peer, pytest.mark.slow]

EDITORS = "editors@example.org"
OPERATOR, PASSWORD = "operator", "a long operator password"
READERS = ("ann@example.org", "bob@example.org")


def _fits(page, problems: list[str]) -> None:
    assert problems == [], problems  # a blocked style or script is a console error
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(22, 22, 22)"


def _readers_mailed(env: dict) -> list[str]:
    return [m["To"] for m in outbox(env) if m["To"] in READERS]


def test_an_editor_holds_the_send_from_the_preview_mail(browser, mailer_env, tmp_path,
                                                        web_server_factory):
    issues = tmp_path / "issues"
    issues.mkdir()
    (issues / "2026-01-07-this-week-in-rust.md").write_text(
        "Title: This Week in Rust 710\nNumber: 710\nDate: 2026-01-07\n\n"
        "Hello and welcome to issue 710, held from the browser.\n")
    url = web_server_factory({"MAILER_ISSUES_DIR": str(issues), "MAILER_ADMIN_USER": OPERATOR,
                              "MAILER_ADMIN_PASSWORD": PASSWORD})
    env = {**mailer_env, "MAILER_ISSUES_DIR": str(issues), "MAILER_BASE_URL": url,
           "MAILER_PREVIEW_TO": EDITORS}
    for reader in READERS:
        assert mailer(env, "subscribers", "add", reader, "--confirmed").returncode == 0
    early = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    assert "preview of issue 710 sent" in early.stdout, early.stdout + early.stderr
    [preview] = outbox(env)

    context = browser.new_context(viewport={"width": 320, "height": 700}, color_scheme="dark")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.set_content(preview.get_body(("html",)).get_content())  # the mail as it arrived
        problems.clear()  # only the web app's pages are judged, not the mail client's view
        page.get_by_role("link", name="Open the preview page").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("This Week in Rust 710")
        expect(page.locator("pre.issue-text")).to_contain_text("held from the browser")
        _fits(page, problems)
        page.get_by_role("link", name="Open the mail as readers will see it").click()
        expect(page.locator("p", has_text="held from the browser")).to_be_visible()
        assert problems == [], problems  # its inline styles are allowed on this page alone

        page.set_content(preview.get_body(("html",)).get_content())
        problems.clear()
        page.get_by_role("link", name="Hold the send").click()
        expect(page.get_by_role("heading", name="Hold the send of issue 710?")).to_be_visible()
        _fits(page, problems)
        page.get_by_role("button", name="Hold the send").click()
        expect(page.get_by_role("heading", name="Issue 710 is held")).to_be_visible()
        expect(page.locator("[data-held]")).to_contain_text(f"held by {EDITORS}")
        _fits(page, problems)
    finally:
        context.close()

    held = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "24h")
    assert held.returncode == 0
    assert re.search(r"issue 710 is held by editors@example\.org at .* UTC; "
                     r"`mailer send --issue 710 --release` to release", held.stdout), held.stdout
    assert _readers_mailed(env) == []
    _release_on_the_console(browser, f"{url}/admin/issues/710")
    assert _readers_mailed(env) == []  # the button lifts the hold; the timer sends
    for _ in range(2):
        mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "24h")
    assert sorted(_readers_mailed(env)) == sorted(READERS)  # one send


def _release_on_the_console(browser, issue_url: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800}, color_scheme="dark",
                                  http_credentials={"username": OPERATOR, "password": PASSWORD})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        page.goto(issue_url)
        expect(page.locator("[data-hold]")).to_contain_text(f"Held by {EDITORS}")
        page.get_by_role("button", name="Release issue 710").click()
        expect(page.locator('[data-step="released"]')).to_contain_text("by operator (console)")
        expect(page.locator("[data-hold]")).to_have_count(0)
        assert problems == [], problems
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
