"""Compile MJML to one HTML document with its CSS inlined.

Shared by the newsletter and the confirmation mail so both read the same in every client.
"""

from __future__ import annotations

import logging
import re

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


def inline_css(html: str, *, keep_style_tags: bool = True) -> str:
    """Inline styles with premailer. ``strip_important=False`` keeps ``!important`` inside media
    queries, which mobile and dark-mode rules need to win over the inlined styles.

    ``keep_style_tags=False`` drops the rules once inlined and keeps only what cannot be inlined
    (``@media``, ``:root``): the same look in fewer bytes. A ``<style data-premailer="ignore">``
    block is left alone either way. premailer drops the doctype; it is put back, or browsers
    would lay the mail out in quirks mode.
    """
    inlined = Premailer(
        html,
        strip_important=False,
        allow_network=False,
        keep_style_tags=keep_style_tags,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    return restore_doctype(html, inlined)


def restore_doctype(original: str, transformed: str) -> str:
    head = original.lstrip()[:15].lower()
    if head.startswith("<!doctype") and not transformed.lstrip()[:15].lower().startswith("<!doctype"):
        return "<!doctype html>\n" + transformed
    return transformed


def mjml_to_email_html(mjml_source: str) -> str:
    return inline_css(compile_mjml(mjml_source))


INLINE_MJ_STYLE = re.compile(r"<mj-style\s+inline=\"inline\"\s*>(.*?)</mj-style>", re.DOTALL)
HTML_STYLE_TAG = re.compile(r"<style(?![^>]*data-premailer)", re.IGNORECASE)


def split_inline_styles(mjml_source: str) -> tuple[str, str]:
    """Take the ``<mj-style inline="inline">`` blocks out of an MJML document: ``(mjml, css)``.

    JavaScript MJML inlines those rules itself; mjml-python (mrml) emits them as an ordinary
    ``<style>``, so they are handed to premailer separately instead.
    """
    css = "\n".join(match.group(1) for match in INLINE_MJ_STYLE.finditer(mjml_source))
    return INLINE_MJ_STYLE.sub("", mjml_source), css


def inline_only(html: str, css: str) -> str:
    """Inline exactly ``css``; leave every ``<style>`` block of the document as it is.

    MJML's own reset sheet (``table, td {…}``, ``p {…}``) belongs in the head, as JavaScript
    MJML leaves it: premailer copying it onto every cell and paragraph is what makes MJML mail
    heavy.
    """
    untouched = HTML_STYLE_TAG.sub('<style data-premailer="ignore"', html)
    inlined = Premailer(
        untouched,
        css_text=[css] if css.strip() else None,
        strip_important=False,
        allow_network=False,
        keep_style_tags=False,  # the ignored blocks stay; inlined rules are not repeated
        remove_classes=False,
        # premailer copies vertical-align onto the tables it restyles as valign: bytes for
        # nothing, MJML's style already says it
        disable_basic_attributes=["valign"],
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    return restore_doctype(html, inlined.replace(' data-premailer="ignore"', ""))


def mjml_to_lean_email_html(mjml_source: str) -> str:
    """MJML → HTML with only the template's ``mj-style inline="inline"`` rules inlined."""
    mjml_without_inline, css = split_inline_styles(mjml_source)
    return inline_only(compile_mjml(mjml_without_inline), css)
