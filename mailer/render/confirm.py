"""The double opt-in confirmation mail: Jinja2 → MJML → HTML like the newsletter, plus plaintext.

Pure: the caller makes the confirm URL (it holds the token) and hands the result to a transport.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import TemplateError

from mailer.config import Settings
from mailer.domain import OutgoingEmail
from mailer.errors import RenderError
from mailer.render.mjml import mjml_to_email_html
from mailer.render.templates import template_environment

CONFIRM_TEMPLATE = "confirm.mjml.j2"


def describe_duration(seconds: int) -> str:
    """7 days, 1 day, 3 hours, 15 minutes: how long a link stays valid, for people."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def confirmation_html(
    *, templates_dir: Path, email: str, confirm_url: str, newsletter_name: str, site_url: str,
    valid_for: str,
) -> str:
    try:
        mjml_source = template_environment(templates_dir).get_template(CONFIRM_TEMPLATE).render(
            email=email, confirm_url=confirm_url, newsletter_name=newsletter_name,
            site_url=site_url, valid_for=valid_for,
        )
    except TemplateError as error:
        raise RenderError(f"{CONFIRM_TEMPLATE}: {error}") from None
    return mjml_to_email_html(mjml_source)


def confirmation_text(
    *, email: str, confirm_url: str, newsletter_name: str, site_url: str, valid_for: str
) -> str:
    return (
        f"Confirm your subscription to {newsletter_name}\n"
        f"\n"
        f"Someone, hopefully you, asked to send {newsletter_name} to {email}.\n"
        f"Open this link to confirm, and the next issue will be in your inbox:\n"
        f"\n"
        f"{confirm_url}\n"
        f"\n"
        f"The link works for {valid_for}. If you did not ask for this, ignore this message:\n"
        f"without a click you are not subscribed and we will not write again.\n"
        f"\n"
        f"-- \n"
        f"{newsletter_name}  {site_url}\n"
    )


def confirmation_email(settings: Settings, *, to: str, confirm_url: str) -> OutgoingEmail:
    """The whole confirmation message for ``to``, ready for ``Transport.send``."""
    fields = {
        "email": to,
        "confirm_url": confirm_url,
        "newsletter_name": settings.newsletter_name,
        "site_url": settings.site_url,
        "valid_for": describe_duration(settings.confirm_token_max_age),
    }
    return OutgoingEmail(
        to=to,
        sender=settings.from_,
        reply_to=settings.reply_to,
        subject=f"Confirm your subscription to {settings.newsletter_name}",
        html=confirmation_html(templates_dir=settings.templates_dir, **fields),
        text=confirmation_text(**fields),
        # a reply to an automatic message must not start an auto-reply loop (RFC 3834)
        headers={"Auto-Submitted": "auto-generated"},
        tags={"kind": "confirmation"},
    )
