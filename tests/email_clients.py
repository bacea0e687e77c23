"""Mail clients that ignore part of the mail's CSS, simulated on the rendered HTML (caniemail):
shared by tests/test_render_clients.py and benchmarks/clients.py."""

from __future__ import annotations

import re

DECLARATION = r"(?<![\w-]){name}\s*:[^;\"'}}]*;?"
STYLE_ELEMENT = re.compile(r"<style\b[^>]*>.*?</style>", re.DOTALL | re.IGNORECASE)


def without_property(name: str):
    """A client that ignores one CSS property, in style attributes and style sheets alike."""
    pattern = re.compile(DECLARATION.format(name=re.escape(name)), re.IGNORECASE)
    return lambda html: pattern.sub("", html)


CLIENTS = {
    "as-sent": lambda html: html,
    "no-word-break": without_property("word-break"),  # Yahoo web, iOS, Android
    "no-white-space": without_property("white-space"),  # Outlook (Word), Samsung, Gmail apps
    "no-style-element": lambda html: STYLE_ELEMENT.sub("", html),  # webmails that drop <style>
}
