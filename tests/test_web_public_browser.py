"""Every public page in headless Chromium at a phone's and a desktop's width, light and dark:
no CSP violation, nothing wider than the screen, the scheme followed (issue 20, item 23).

With PUBLIC_SCREENSHOTS=folder the pages are also kept as PNGs to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web_clients import confirm_link_from_outbox

pytestmark = [pytest.mark.browser, pytest.mark.peer, pytest.mark.slow]

BACKGROUNDS = {"light": "rgb(253, 253, 253)", "dark": "rgb(22, 22, 22)"}


def _check(page, name: str, width: int, scheme: str, problems: list[str]) -> None:
    assert problems == [], (name, problems)  # a blocked style or script is a console error
    assert page.evaluate("document.documentElement.scrollWidth") <= width, name
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == BACKGROUNDS[scheme]
    assert page.get_by_role("heading", level=1).count() == 1, name
    folder = os.environ.get("PUBLIC_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{folder}/{name}-{width}-{scheme}.png", full_page=True)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1280])
def test_every_public_page_reads_well(browser, web_server, mailer_env, width, scheme):
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        for name, path in (("embed", "/subscribe/embed"),
                           ("embed-refused", "/subscribe/embed?return=https://evil.example/"),
                           ("bad-link", "/confirm/not-a-link"),
                           ("mail-me-my-link", "/manage")):
            page.goto(web_server + path)
            if name == "bad-link":
                problems.clear()  # the 400 answer itself is logged as a failed resource
            _check(page, name, width, scheme, problems)

        page.goto(web_server + "/")  # the root is the form
        assert page.url == f"{web_server}/subscribe"
        _check(page, "subscribe", width, scheme, problems)
        page.get_by_label("Your e-mail address").fill(f"crab-{width}-{scheme}@example.org")
        page.get_by_role("button", name="Subscribe").click()
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        _check(page, "thanks", width, scheme, problems)

        link = confirm_link_from_outbox(mailer_env, web_server)
        page.goto(link)
        _check(page, "confirm", width, scheme, problems)
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
        page.goto(link)  # the link in the mail, clicked again
        expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
        _check(page, "confirmed-again", width, scheme, problems)

        page.get_by_role("link", name="manage your subscription").click()
        _check(page, "manage", width, scheme, problems)
        manage_url = page.url
        page.get_by_role("link", name="Erase me").click()  # the confirmation, which erases nothing
        expect(page.get_by_role("heading", name="Erase your address?")).to_be_visible()
        _check(page, "manage-erase", width, scheme, problems)
        page.get_by_role("link", name="Keep my subscription as it is").click()
        assert page.url == manage_url
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
        _check(page, "unsubscribed", width, scheme, problems)

        page.goto(link)  # now the old link is an error, and never a way back in
        problems.clear()  # the 410 answer is logged as a failed resource
        expect(page.get_by_role("heading", name="This link was already used")).to_be_visible()
        _check(page, "used-link", width, scheme, problems)
    finally:
        context.close()


def _address_link_from_outbox(mailer_env, base_url: str) -> str:
    import email
    import email.policy
    import mailbox
    import re
    import time

    deadline = time.monotonic() + 15
    folder = Path(mailer_env["MAILER_OUTBOX_DIR"])
    while time.monotonic() < deadline:
        box = mailbox.Maildir(folder, factory=None, create=False)
        for key in box.keys():
            message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            text = message.get_body(preferencelist=("plain",)).get_content()
            found = re.search(re.escape(base_url) + r"/confirm/address/\S+", text)
            if found:
                return found.group(0)
        time.sleep(0.05)
    raise AssertionError("no address change mail arrived in the outbox")


def test_changing_the_address_reads_well_at_320_px(browser, web_server, mailer_env):
    """Change my address (issue 26) on the narrowest phone: the form, the answer, the link's
    page and the page after it, each without a CSP violation or a sideways scroll."""
    context = browser.new_context(viewport={"width": 320, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto(web_server + "/subscribe")
        page.get_by_label("Your e-mail address").fill("narrow-old@example.org")
        page.get_by_role("button", name="Subscribe").click()
        page.goto(confirm_link_from_outbox(mailer_env, web_server))
        page.get_by_role("button", name="Confirm").click()
        page.get_by_role("link", name="manage your subscription").click()
        _check(page, "manage-address", 320, "light", problems)
        page.get_by_label("New address").fill("a-rather-long-new-address-for-a-phone@example.net")
        page.get_by_role("button", name="Change my address").click()
        expect(page.get_by_role("heading", name="Check your inbox at the new address")).to_be_visible()
        _check(page, "manage-address-sent", 320, "light", problems)
        page.goto(_address_link_from_outbox(mailer_env, web_server))
        _check(page, "confirm-address", 320, "light", problems)
        page.get_by_role("button", name="Confirm the new address").click()
        expect(page.get_by_role("heading", name="Your address is changed")).to_be_visible()
        _check(page, "address-changed", 320, "light", problems)
    finally:
        context.close()
