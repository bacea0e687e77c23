"""pytest plugin: headless Chromium (Debian's ``chromium``) driven by Playwright.

Playwright's own browser download is never used: we launch the system binary. Tests that use
``browser`` skip with a clear reason when chromium is not installed.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # the machine's network is closed: without these Chromium keeps dialling Google's hosts
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh page at a phone's width (375 px); call ``page.set_viewport_size`` to change it."""
    context = browser.new_context(viewport={"width": 375, "height": 800})
    yield context.new_page()
    context.close()
