"""Issue → MJML → HTML (inlined) and plaintext, once per issue; personalised per recipient.

The names below load the pipeline (MJML, premailer, Jinja: a third of a second) when first
used, so a module that needs only a pure part of this package (``render.links``, say) does not
pay for it: `mailer stats` imports the link counts, not the renderer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailer.render.pipeline import (
        GMAIL_CLIP_BYTES,
        MANAGE_PLACEHOLDER,
        UNSUBSCRIBE_PLACEHOLDER,
        RenderedIssue,
        RenderOptions,
        personalise,
        render_issue,
    )

__all__ = [
    "GMAIL_CLIP_BYTES",
    "MANAGE_PLACEHOLDER",
    "UNSUBSCRIBE_PLACEHOLDER",
    "RenderOptions",
    "RenderedIssue",
    "personalise",
    "render_issue",
]


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module("mailer.render.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
