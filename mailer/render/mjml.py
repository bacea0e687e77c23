"""Compile MJML to one HTML document with its CSS inlined.

Shared by the newsletter and the confirmation mail so both read the same in every client.
"""

from __future__ import annotations

import logging

from mjml import mjml2html
from premailer import Premailer

from mailer.errors import RenderError


def compile_mjml(mjml_source: str) -> str:
    """MJML → HTML. Fonts are left out on purpose: MJML's Google Fonts link costs bytes and
    leaks readers' addresses to a third party."""
    try:
        return mjml2html(mjml_source, disable_comments=True, fonts={})
    except ValueError as error:
        raise RenderError(f"MJML did not compile: {error}") from None


def inline_css(html: str) -> str:
    """Inline styles with premailer. ``strip_important=False`` keeps ``!important`` inside media
    queries, which mobile and dark-mode rules need to win over the inlined styles."""
    return Premailer(
        html,
        strip_important=False,
        allow_network=False,
        keep_style_tags=True,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()


def mjml_to_email_html(mjml_source: str) -> str:
    return inline_css(compile_mjml(mjml_source))
