"""axe-core over the public reader pages in headless Chromium (issue 26): the sign-up form, the
confirm and unsubscribe pages, the reader's own page and its pause, address and erase pages,
and "Mail me my link", at a phone's width in light and dark. No violation of impact serious or
critical; a failure lists each with the elements it found.

With PUBLIC_SCREENSHOTS=folder the dark run also keeps ``manage-320-dark.png`` (the reader's
page at 320 px) to look at."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web_clients import confirm_link_from_outbox

pytestmark = [pytest.mark.browser, pytest.mark.peer, pytest.mark.slow]

BLOCKING = tuple(os.environ.get("AXE_IMPACTS", "serious,critical").split(","))


def axe_findings(page) -> list[str]:
    """axe-core's violations of impact serious or critical on the page as it is, one readable
    line per rule and element."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations"]}).response
    return [f"{page.url}: {v['id']} ({v['impact']}): {v['help']} at {', '.join(map(str, node['target']))}"
            f"\n    {node.get('failureSummary', '').replace(chr(10), ' ')}"
            for v in results["violations"] if v["impact"] in BLOCKING for node in v["nodes"]]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_public_reader_pages_have_no_serious_accessibility_violation(
        browser, web_server, mailer_env, scheme):
    context = browser.new_context(viewport={"width": 375, "height": 800}, color_scheme=scheme)
    page = context.new_page()
    findings: list[str] = []

    def check(heading: str) -> None:
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        findings.extend(axe_findings(page))

    try:
        page.goto(web_server + "/subscribe")
        check(re.compile("Subscribe to"))
        page.get_by_label("Your e-mail address").fill(f"axe-{scheme}@example.org")
        page.get_by_role("button", name="Subscribe").click()
        check("Check your inbox")

        page.goto(confirm_link_from_outbox(mailer_env, web_server))
        check("Confirm your subscription")
        page.get_by_role("button", name="Confirm").click()
        check("You are subscribed")

        page.get_by_role("link", name="manage your subscription").click()
        check("Your subscription")
        manage_url = page.url
        unsubscribe_path = page.locator("form[action^='/unsubscribe/']").get_attribute("action")
        if scheme == "dark" and os.environ.get("PUBLIC_SCREENSHOTS"):
            folder = Path(os.environ["PUBLIC_SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            page.set_viewport_size({"width": 320, "height": 800})
            assert page.evaluate("document.documentElement.scrollWidth") <= 320
            page.screenshot(path=str(folder / "manage-320-dark.png"), full_page=True)
            page.set_viewport_size({"width": 375, "height": 800})

        page.get_by_label("Skip issues until").fill(page.locator("#until").get_attribute("min"))
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_role("button", name="Resume now")).to_be_visible()
        check("Your subscription")  # paused: the page with its Resume button

        page.goto(manage_url + "/address")
        check(re.compile("address", re.IGNORECASE))
        page.get_by_label("New address").fill(f"axe-new-{scheme}@example.org")
        page.get_by_role("button", name="Change my address").click()
        check("Check your inbox at the new address")

        page.goto(manage_url + "/erase")
        check("Erase your address?")

        page.goto(web_server + unsubscribe_path)
        check("Your subscription")

        page.goto(web_server + "/manage")
        check("The link to your subscription")
        page.get_by_label("Your e-mail address").fill("not an address")
        page.locator("form").evaluate("form => form.noValidate = true")  # the server's answer
        page.get_by_role("button", name="Mail me my link").click()
        expect(page.get_by_role("alert")).to_be_visible()
        check("The link to your subscription")
        page.get_by_label("Your e-mail address").fill(f"axe-{scheme}@example.org")
        page.get_by_role("button", name="Mail me my link").click()
        check("Check your inbox")

        page.goto(manage_url[:-4])  # a broken link: the error page that offers a new one
        check("This link is not valid")
    finally:
        context.close()
    assert findings == [], "axe-core found:\n" + "\n".join(findings)
