"""The operator pages: who gets in, what they see, and how it looks on a phone in Chromium."""

from __future__ import annotations

import re

import pytest

from tests.stats_ledger import build_ledger
from tests.web_clients import ADMIN_ENV, PASSWORD, TOKEN, USER, admin_client, basic_auth

@pytest.fixture
def admin(mailer_env, engine, monkeypatch):
    build_ledger(engine)
    return admin_client(monkeypatch, ADMIN_ENV)


def test_without_credentials_the_browser_is_asked_to_log_in(admin):
    for path in ("/admin", "/admin/issues/644", "/admin/stats.json"):
        response = admin.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Basic ")
        assert "644" not in response.text


def test_a_wrong_password_or_user_is_refused(admin):
    assert admin.get("/admin", headers=basic_auth(USER, "wrong")).status_code == 401
    assert admin.get("/admin", headers=basic_auth("root", PASSWORD)).status_code == 401
    assert admin.get("/admin", headers=basic_auth(USER, PASSWORD + "x")).status_code == 401
    assert admin.get("/admin", headers={"Authorization": "Basic !!not base64!!"}).status_code == 401
    assert admin.get("/admin", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_right_password_shows_the_issue_table(admin):
    response = admin.get("/admin", headers=basic_auth(USER, PASSWORD))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    row = re.search(r'<tr data-issue="644">(.*?)</tr>', response.text, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[:8] == ["40", "36", "30", "3 (2 / 1)", "1", "2", "2", "1"]
    # SES's bounce rate (2 hard of 36 sent) and complaints ÷ delivered (1 of 30): the breaker's
    assert cells[8:10] == ["5.56 %", "3.33 %"]
    assert "at or above SES&#39;s 5 % review threshold" in response.text


def test_a_bearer_token_opens_the_json(admin):
    response = admin.get("/admin/stats.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    data = response.json()
    first = data["campaigns"][0]
    assert (first["issue_number"], first["sent"], first["complained"]) == (644, 36, 1)
    assert [w["code"] for w in first["warnings"]] == ["bounce_review", "complaint_pause",
                                                      "gmail_spam"]
    assert data["subscribers"]["active"] == 50


def test_the_pages_stay_shut_when_no_credentials_are_configured(mailer_env, engine, monkeypatch):
    build_ledger(engine)
    client = admin_client(monkeypatch, {"MAILER_ADMIN_USER": USER})  # a user without a password
    for headers in ({}, basic_auth(USER, ""), {"Authorization": "Bearer "}):
        response = client.get("/admin/stats.json", headers=headers)
        assert response.status_code == 403
        assert "MAILER_ADMIN_PASSWORD" in response.text
        assert "campaigns" not in response.text


def test_password_guessing_is_slowed_down(admin):
    for _ in range(10):
        assert admin.get("/admin", headers=basic_auth(USER, "guess")).status_code == 401
    blocked = admin.get("/admin", headers=basic_auth(USER, "guess"))
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    # even the right password waits: a lucky guess after the limit must not get in
    assert admin.get("/admin", headers=basic_auth(USER, PASSWORD)).status_code == 429


def test_issue_page_has_an_accessible_svg_chart_and_no_script(admin):
    response = admin.get("/admin/issues/644", headers=basic_auth(USER, PASSWORD))
    assert response.status_code == 200
    html = response.text
    svgs = re.findall(r"<svg[^>]*>.*?</svg>", html, re.S)
    svg = next(s for s in svgs if "messages sent per minute" in s)
    labelled = re.search(r'aria-labelledby="(\S+) (\S+)"', svg)
    assert 'role="img"' in svg and labelled
    assert f'<title id="{labelled.group(1)}">' in svg and f'<desc id="{labelled.group(2)}">' in svg
    assert "36 messages sent between 2026-11-18 10:00 and 10:02 UTC" in svg
    # minutes 10:00, 10:01 (nothing sent) and 10:02: three bars, the empty one flat
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', svg)]
    assert len(heights) == 3 and heights[1] == 0 and heights[0] > heights[2] > 0
    # a finished send: no script on the page (only a running one is polled)
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe" not in csp
    assert "smtp; 550 5.1.1 user unknown" in html and "example.net" in html
    assert admin.get("/admin/issues/999", headers=basic_auth(USER, PASSWORD)).status_code == 404


def test_what_the_database_holds_is_escaped(admin, engine):
    from sqlmodel import select

    from mailer.store.db import session
    from mailer.store.models import Campaign

    with session(engine) as db:
        campaign = db.exec(select(Campaign).where(Campaign.issue_number == 644)).one()
        campaign.subject = "<script>alert(1)</script>"
        db.add(campaign)
        db.commit()
    html = admin.get("/admin/issues/644", headers=basic_auth(USER, PASSWORD)).text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_a_long_send_is_drawn_in_wider_bars_of_a_readable_unit():
    from datetime import UTC, datetime, timedelta

    from mailer.reads.issue_report import rebin
    from mailer.reads.delivery_figures import TimeBucket
    from mailer.web.console.overview import bucket_width, unit_name

    start = datetime(2026, 11, 18, 10, tzinfo=UTC)
    # ten hours: 5-minute bars would be 120, too many; 15-minute ones make 40
    seconds = bucket_width(start, start + timedelta(hours=10))
    assert (seconds, unit_name(seconds)) == (900, "15 minutes")
    assert unit_name(bucket_width(start, start + timedelta(minutes=3))) == "minute"
    assert unit_name(bucket_width(start, start + timedelta(days=2))) == "hour"
    minutes = [TimeBucket(start, 5), TimeBucket(start + timedelta(minutes=7), 1),
               TimeBucket(start + timedelta(minutes=45), 7)]
    assert [b.sent for b in rebin(minutes, seconds)] == [6, 0, 0, 7]


@pytest.mark.browser
@pytest.mark.peer
@pytest.mark.slow
def test_operator_page_in_chromium_on_a_phone(browser, mailer_env, engine, web_server_factory):
    build_ledger(engine)
    url = web_server_factory({"MAILER_ADMIN_USER": USER, "MAILER_ADMIN_PASSWORD": PASSWORD})
    context = browser.new_context(viewport={"width": 375, "height": 800},
                                  http_credentials={"username": USER, "password": PASSWORD})
    try:
        page = context.new_page()
        assert page.goto(f"{url}/admin").status == 200
        rows = page.locator("tr[data-issue]")
        assert rows.count() == 2
        assert rows.nth(0).locator("td").nth(1).inner_text() == "36"
        assert page.get_by_text("at or above Gmail's 0.30 % spam-rate line").is_visible()
        # the inline style ran under the page's CSP (a blocked style would leave "separate")
        assert page.eval_on_selector("table", "t => getComputedStyle(t).borderCollapse") == "collapse"
        assert page.evaluate("document.documentElement.scrollWidth") <= 375

        page.get_by_role("link", name="644").first.click()
        page.wait_for_url(f"{url}/admin/issues/644")
        chart = page.get_by_role("img", name=re.compile("Issue 644: messages sent per minute"))
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box and box["width"] <= 375 and box["height"] > 50
        assert chart.locator("rect.bar").count() == 3
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        context.close()


@pytest.mark.peer
def test_the_real_server_asks_for_credentials(mailer_env, web_server_factory):
    import httpx

    url = web_server_factory({"MAILER_ADMIN_TOKEN": TOKEN})
    refused = httpx.get(f"{url}/admin")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(f"{url}/admin", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
