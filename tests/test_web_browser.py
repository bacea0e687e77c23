"""The sign-up flow clicked through in headless Chromium against the real server."""

from __future__ import annotations

import sqlite3

import pytest
from playwright.sync_api import expect
from tests.web_clients import confirm_link_from_outbox

pytestmark = [pytest.mark.browser, pytest.mark.peer, pytest.mark.slow]


def read_status(mailer_env, address: str) -> str:
    path = mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT status FROM subscriber WHERE email = ?", (address,)).fetchone()[0]


def test_subscribe_confirm_unsubscribe_in_chromium(page, web_server, mailer_env):
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{web_server}/subscribe")
    page.get_by_label("Your e-mail address").fill("crab@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_url(f"{web_server}/subscribe/thanks")
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    link = confirm_link_from_outbox(mailer_env, web_server)
    page.goto(link)
    assert read_status(mailer_env, "crab@example.org") == "pending"  # opening the link is not consent
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    assert read_status(mailer_env, "crab@example.org") == "active"

    page.get_by_role("link", name="manage your subscription").click()
    expect(page.get_by_text("crab@example.org receives")).to_be_visible()
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert read_status(mailer_env, "crab@example.org") == "unsubscribed"

    # the page's styles are allowed by the CSP hash: no violation was reported
    assert problems == []
    assert page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") != "none"


def test_invalid_address_is_reported_beside_the_field(page, web_server, mailer_env):
    page.goto(f"{web_server}/subscribe")
    field = page.get_by_label("Your e-mail address")
    # type=email would stop the browser from sending it; a user on an old browser can still
    field.evaluate("node => node.setAttribute('type', 'text')")
    field.fill("not an address")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("not a valid e-mail address")
    assert page.get_by_label("Your e-mail address").input_value() == "not an address"
