"""Issue → MJML → HTML (inlined) and plaintext, once per issue; personalised per recipient."""

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
