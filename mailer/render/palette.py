"""The newsletter's colours in light and dark mode.

Every text colour keeps a contrast of at least 4.5:1 (WCAG AA) against the background it sits
on; tests/test_render_browser.py measures it in Chromium for both schemes.
"""

from __future__ import annotations

from types import MappingProxyType

LIGHT = MappingProxyType({
    "page": "#ffffff",
    "header": "#f6f8fa",
    "text": "#1f2328",
    "muted": "#57606a",
    "link": "#0550ae",
    "border": "#d0d7de",
    "rule": "#1f2328",
    "code": "#eef1f4",
})

DARK = MappingProxyType({
    "page": "#0d1117",
    "header": "#161b22",
    "text": "#e6edf3",
    "muted": "#9da7b3",
    "link": "#58a6ff",
    "border": "#30363d",
    "rule": "#e6edf3",
    "code": "#262c36",
})
