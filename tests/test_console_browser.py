"""The operator console in headless Chromium against the real server, at a desktop's 1,280 px
and a phone's 390 px, light and dark: nothing runs past the right edge, no CSP violation, the
figures are those of `mailer stats --json`, an operator action works end to end, and a
cross-site form is refused.

Set CONSOLE_SCREENSHOTS=DIR to keep a full-page PNG of every page at every width and scheme.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.console_seed import SOFT, add_paused_campaign, add_running_campaign, build_console_data
from tests.web_clients import PASSWORD, USER
from tests.mailer_cli import mailer

pytestmark = [pytest.mark.browser, pytest.mark.peer, pytest.mark.slow]

WIDTHS = (1280, 390)
ADMIN = {"MAILER_ADMIN_USER": USER, "MAILER_ADMIN_PASSWORD": PASSWORD}


@pytest.fixture
def console_url(mailer_env, engine, web_server_factory) -> str:
    build_console_data(engine)
    return web_server_factory(ADMIN)


def _db_path(mailer_env) -> str:
    return mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///")


def _reader_id(mailer_env, email: str) -> int:
    with sqlite3.connect(_db_path(mailer_env)) as db:
        return db.execute("SELECT id FROM subscriber WHERE email = ?", (email,)).fetchone()[0]


def _stats_json(mailer_env, *args: str) -> dict:
    done = mailer(mailer_env, "stats", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _context(browser, width: int, scheme: str = "light"):
    return browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme,
                               http_credentials={"username": USER, "password": PASSWORD})


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def _fits(page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url
    # every chart's labels are drawn at the page's own size, whatever the width
    sizes = page.eval_on_selector_all(
        "svg.chart text", "nodes => nodes.map(n => n.getBoundingClientRect().height)")
    assert all(10 <= size <= 24 for size in sizes if size), (page.url, sizes)


def _shoot(page, name: str, tmp_path: Path) -> None:
    """A full-page PNG, and with CONSOLE_SCREENSHOTS also screen-sized tiles to look at."""
    keep = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(keep or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    if not keep:
        return
    width = page.viewport_size["width"]
    height = page.evaluate("document.documentElement.scrollHeight")
    tile = 1000
    for n in range(min(-(-height // tile), 6)):
        clip = {"x": 0, "y": n * tile, "width": width, "height": min(tile, height - n * tile)}
        page.screenshot(path=str(folder / f"{name}.{n}.png"), full_page=True, clip=clip)


def _reads_on_a_phone(page) -> None:
    """A table wider than the phone says it scrolls, no row is a tall sliver of wrapped words,
    and the labels under a chart do not run into each other."""
    regions = page.eval_on_selector_all(".scroll", """nodes => nodes.map(n => ({
        wide: n.scrollWidth > n.clientWidth + 1,
        hint: parseFloat(getComputedStyle(n, "::before").maxHeight) || 0,
        says: getComputedStyle(n, "::before").content}))""")
    for region in regions:  # the hint is shown exactly when the table is wider than the screen
        assert (region["hint"] > 0) == region["wide"], (page.url, region)
        assert "sideways" in region["says"]
    tallest = page.eval_on_selector_all(
        "tbody tr", "rows => Math.max(0, ...rows.map(r => r.getBoundingClientRect().height))")
    assert tallest <= 160, (page.url, tallest)
    overlaps = page.eval_on_selector_all("svg.chart", """charts => charts.flatMap(chart => {
        const boxes = [...chart.querySelectorAll("text.xlabel")]
            .filter(t => getComputedStyle(t).display !== "none" && t.textContent)
            .map(t => t.getBoundingClientRect()).sort((a, b) => a.left - b.left);
        return boxes.slice(1).filter((box, i) => box.left < boxes[i].right)
            .map(box => chart.querySelector("title").textContent);
    })""")
    assert overlaps == [], (page.url, overlaps)


def _numbers(text: str) -> int:
    return int(text.replace(",", "").strip())


def test_every_page_fits_both_widths_in_both_schemes(browser, console_url, mailer_env, engine,
                                                     tmp_path):
    reader = _reader_id(mailer_env, SOFT)
    add_paused_campaign(engine)
    pages = {"overview": "/admin", "issue": "/admin/issues/644", "stopped": "/admin/issues/645",
             "paused": "/admin/issues/647", "readers": "/admin/readers",
             "search": "/admin/readers?q=example", "reader": f"/admin/readers/{reader}",
             "action": f"/admin/readers/{reader}/unsuppress", "events": "/admin/events",
             "event": "/admin/events/1"}
    for scheme in ("light", "dark"):
        for width in WIDTHS:
            context = _context(browser, width, scheme)
            try:
                page = context.new_page()
                problems = _watch(page)
                for name, path in pages.items():
                    assert page.goto(console_url + path).status == 200, path
                    _fits(page, width)
                    if width < 600:
                        _reads_on_a_phone(page)
                    _shoot(page, f"{name}-{width}-{scheme}", tmp_path)
                assert problems == []
                background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert (background == "rgb(18, 18, 20)") == (scheme == "dark")
            finally:
                context.close()


def test_overview_figures_are_those_of_the_cli(browser, console_url, mailer_env):
    data = _stats_json(mailer_env)
    for width in WIDTHS:
        context = _context(browser, width)
        try:
            page = context.new_page()
            page.goto(f"{console_url}/admin")
            for trend in data["issues"]:
                row = page.locator(f'tr[data-trend="{trend["issue_number"]}"] td')
                cells = row.all_inner_texts()
                assert [_numbers(c) for c in cells[:4]] == [
                    trend["sent"], trend["delivered"], trend["bounced"], trend["complained"]]
                rate = trend["bounce_rate"]
                assert cells[4] == ("–" if rate is None else f"{rate * 100:.2f} %")
            for week in data["weeks"][-8:]:
                cells = page.locator(f'tr[data-week="{week["week_start"]}"] td').all_inner_texts()
                assert [_numbers(c) for c in cells[:6]] == [
                    week["new"], week["confirmed"], week["unsubscribed"], week["bounced"],
                    week["complained"], week["list_size"]]
            active = page.locator('[data-figure="active"]').inner_text()
            assert _numbers(active) == data["subscribers"]["active"]
            rate = data["signups"]["confirmation_rate"]
            assert page.locator('[data-figure="confirmation_rate"]').inner_text() == \
                f"{rate * 100:.1f} %"
            chart = page.get_by_role("img", name="Bounce rate per issue")
            expect(chart).to_be_visible()
            assert chart.locator("text", has_text="SES review 5 %").count() == 1
            box = chart.bounding_box()
            assert box and box["width"] <= width
        finally:
            context.close()


def test_issue_figures_are_those_of_the_cli(browser, console_url, mailer_env):
    summary = _stats_json(mailer_env, "--issue", "644")["summary"]
    context = _context(browser, 390)
    try:
        page = context.new_page()
        page.goto(f"{console_url}/admin")
        page.get_by_role("link", name="644").first.click()
        page.wait_for_url(f"{console_url}/admin/issues/644")
        for key in ("recipients", "sent", "delivered", "bounced", "complained", "failed",
                    "skipped", "unknown"):
            assert _numbers(page.locator(f'[data-figure="{key}"]').inner_text()) == summary[key]
        chart = page.get_by_role("img", name=re.compile("messages sent per minute"))
        expect(chart).to_be_visible()
        assert chart.locator("rect").count() == 3
    finally:
        context.close()


def test_an_operator_unsuppresses_a_reader_with_a_reason(browser, console_url, mailer_env):
    context = _context(browser, 390)
    try:
        page = context.new_page()
        page.goto(f"{console_url}/admin/readers")
        page.get_by_label("Address, or part of one").fill("soft@")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name=SOFT).click()
        expect(page.locator('[data-figure="status"]')).to_have_text("bounced")
        page.get_by_role("link", name="Unsuppress…").click()
        button = page.get_by_role("button", name=f"Unsuppress {SOFT}")
        button.click()  # no reason yet: the browser holds the form back
        assert page.url.endswith("/unsuppress")
        page.get_by_label("Reason").fill("Their mailbox is fixed; they wrote to us")
        button.click()
        expect(page.locator('[data-figure="status"]')).to_have_text("active")
        expect(page.get_by_role("status")).to_contain_text("unsuppress")
        history = page.locator("#history")
        expect(history).to_contain_text("Their mailbox is fixed; they wrote to us")
        expect(history).to_contain_text("bounced → active")
    finally:
        context.close()
    with sqlite3.connect(_db_path(mailer_env)) as db:
        status, detail = db.execute(
            "SELECT s.status, c.detail FROM subscriber s JOIN subscriber_change c "
            "ON c.subscriber_id = s.id WHERE s.email = ? ORDER BY c.id DESC LIMIT 1",
            (SOFT,)).fetchone()
    assert status == "active" and json.loads(detail)["reason"].startswith("Their mailbox")


def test_a_cross_site_form_is_refused(browser, console_url, mailer_env):
    reader = _reader_id(mailer_env, "r9@gmail.com")
    context = _context(browser, 1280)
    try:
        page = context.new_page()
        # a page that is not the console (here about:blank) posts to it with the operator's
        # cached credentials: the browser sends no token and a foreign origin
        page.set_content(
            f'<form method="post" action="{console_url}/admin/readers/{reader}/unsubscribe">'
            '<input name="reason" value="forged"><input name="csrf_token" value="guess">'
            '<button>go</button></form>')
        with page.expect_navigation():
            page.get_by_role("button", name="go").click()
        assert "not sent from the operator console" in page.content()
    finally:
        context.close()
    with sqlite3.connect(_db_path(mailer_env)) as db:
        assert db.execute("SELECT status FROM subscriber WHERE id = ?",
                          (reader,)).fetchone()[0] == "active"


def test_a_running_send_updates_without_a_reload(browser, console_url, mailer_env, engine):
    campaign = add_running_campaign(engine, recipients=20)
    context = _context(browser, 390)
    try:
        page = context.new_page()
        problems = _watch(page)
        page.goto(f"{console_url}/admin/issues/646")
        sent = page.locator('[data-live="sent"]')
        expect(sent).to_have_text("0")
        with sqlite3.connect(_db_path(mailer_env)) as db:
            db.execute("UPDATE delivery SET status = 'sent', sent_at = CURRENT_TIMESTAMP "
                       "WHERE campaign_id = ? AND id IN (SELECT id FROM delivery "
                       "WHERE campaign_id = ? LIMIT 12)", (campaign, campaign))
        expect(sent).to_have_text("12", timeout=15_000)
        expect(page.locator('[data-live="queued"]')).to_have_text("8")
        assert page.evaluate("document.querySelector('progress').value") == 12
        assert problems == []
    finally:
        context.close()
