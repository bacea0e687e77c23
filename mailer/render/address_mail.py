"""The short mails of the reader's own page (issue 26): for a change of address, the link to
the new address, the notice to an address already on the list and the notice to the old
address once it is done; and the link to the page itself, mailed on request ("Mail me my link").

Pure: the caller makes the URLs and hands the result to a transport. Each is plain text with
the same short HTML around it (escaped), so the three cost the same to build.
"""

from __future__ import annotations

from html import escape

from mailer.config import Settings
from mailer.domain import OutgoingEmail
from mailer.render.confirm import describe_duration


def masked(address: str) -> str:
    """``n***@example.org``: enough for the reader to recognise, too little to harvest."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _email(settings: Settings, *, to: str, subject: str, paragraphs: list[str],
           kind: str) -> OutgoingEmail:
    footer = f"-- \n{settings.newsletter_name}  {settings.site_url}\n"
    text = "\n\n".join(paragraphs) + "\n\n" + footer
    html = ("<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">"
            + "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
            + f"<p style=\"color:#555\">{escape(settings.newsletter_name)} "
              f"{escape(settings.site_url)}</p></body></html>")
    return OutgoingEmail(to=to, sender=settings.from_, reply_to=settings.reply_to,
                         subject=subject, html=html, text=text,
                         # a reply to an automatic message must not start a loop (RFC 3834)
                         headers={"Auto-Submitted": "auto-generated"}, tags={"kind": kind})


def confirm_new_address_email(settings: Settings, *, to: str, old: str,
                              confirm_url: str) -> OutgoingEmail:
    name = settings.newsletter_name
    return _email(settings, to=to, subject=f"Confirm your new address for {name}", kind="address-confirm",
                  paragraphs=[
                      f"Someone, hopefully you, asked to move the {name} subscription of "
                      f"{masked(old)} to this address, {to}.",
                      f"Open this link to confirm; the next issue then comes here:\n{confirm_url}",
                      f"The link works for {describe_duration(settings.confirm_token_max_age)}. "
                      "If you did not ask for this, ignore this message: nothing changes "
                      "without a click.",
                  ])


def address_taken_email(settings: Settings, *, to: str) -> OutgoingEmail:
    name = settings.newsletter_name
    return _email(settings, to=to, subject=f"Someone tried to move a {name} subscription here",
                  kind="address-taken", paragraphs=[
                      f"Someone asked to move another {name} subscription to this address, "
                      f"{to}. This address is already on our list, so nothing was changed: "
                      "your own subscription stays as it is.",
                      "If this was you, keep this subscription, or unsubscribe it first and "
                      "ask again from the other one's page. Otherwise you need do nothing.",
                  ])


def address_changed_email(settings: Settings, *, to: str, new: str) -> OutgoingEmail:
    name = settings.newsletter_name
    return _email(settings, to=to, subject=f"Your {name} address was changed", kind="address-changed",
                  paragraphs=[
                      f"Your {name} subscription was moved from this address to {masked(new)}; "
                      "issues now go there and no longer here.",
                      "If this was not you, reply to this message and we will look into it "
                      "and put it back.",
                  ])


def manage_link_email(settings: Settings, *, to: str, manage_url: str) -> OutgoingEmail:
    """The link to the reader's own page, asked for on ``/manage`` by someone who typed ``to``."""
    name = settings.newsletter_name
    return _email(settings, to=to, subject=f"The link to your {name} subscription",
                  kind="manage-link", paragraphs=[
                      f"Someone, hopefully you, asked for the link to the page of the {name} "
                      f"subscription of this address, {to}.",
                      "Open it to see your subscription, pause it, change your address, "
                      f"download your data, erase it or unsubscribe:\n{manage_url}",
                      "The link keeps working; keep this message, or ask for a new one at any "
                      "time. If you did not ask for it, ignore this message: nothing changes "
                      "without a click.",
                  ])
