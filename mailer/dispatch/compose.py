"""One reader's message from the campaign's rendered issue: the issue is rendered once per
campaign and only personalised (two string replacements) per recipient."""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from typing import TYPE_CHECKING, Protocol

from mailer import wire
from mailer.config import Settings
from mailer.domain import MessageTemplate, OutgoingEmail
from mailer.message import header_text
from mailer.store.ledger import ClaimedDelivery
from mailer.tokens import make_manage_token, make_unsubscribe_token

if TYPE_CHECKING:
    # Only named here: mailer.render (premailer, mjml) loads when a composer is first built.
    from mailer.render import RenderedIssue

ONE_CLICK = wire.ONE_CLICK

# A reader's own values in a template: only these characters, which HTML escaping leaves as
# they are (the tokens are ``<id>.<base64url signature>``).
_URL_SAFE = re.compile(r"[A-Za-z0-9._-]+\Z")
_BRACE = re.compile(r"[{}]")
_BRACE_VARIABLE = {"{": "{{lb}}", "}": "{{rb}}"}
UNSUBSCRIBE_VARIABLE, MANAGE_VARIABLE = "unsubscribe_token", "manage_token"


def _literal_braces(text: str) -> str:
    """Every ``{`` and ``}`` as a template variable: nothing in an issue (Rust's ``{}``, CSS)
    can open or close one of ours."""
    return _BRACE.sub(lambda brace: _BRACE_VARIABLE[brace.group()], text)


class Personalise(Protocol):
    """``mailer.render.personalise``: one reader's links filled into the rendered parts."""

    def __call__(self, rendered: RenderedIssue, *, unsubscribe_url: str,
                 manage_url: str) -> tuple[str, str]: ...


class _Fill(Protocol):
    """Personalise bound to the campaign's rendered issue: ``(html, text)`` for one reader."""

    def __call__(self, *, unsubscribe_url: str, manage_url: str) -> tuple[str, str]: ...


# -- messages ----------------------------------------------------------------------------------

class _SplitIssue:
    """The rendered issue cut once at its per-recipient links, so filling one reader in is a
    join of a few parts instead of scanning ~100 KB of HTML and text again (~350 us each time).

    ``personalise`` still decides everything: the cut points are where it puts two random
    marks, and each reader's escaped links come from running it on a tiny copy of the issue
    holding only the placeholders.
    """

    def __init__(self, rendered: RenderedIssue, personalise: Personalise) -> None:
        from mailer.render import MANAGE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER

        nonce = uuid.uuid4().hex
        self._marks = (f"mailerunsubscribe{nonce}", f"mailermanage{nonce}")
        html, text = personalise(rendered, unsubscribe_url=self._marks[0],
                                 manage_url=self._marks[1])
        cut = re.compile("(" + "|".join(self._marks) + ")")
        self._html = cut.split(html)
        self._text = cut.split(text)
        probe = f"{UNSUBSCRIBE_PLACEHOLDER}\x00{MANAGE_PLACEHOLDER}"
        self._probe = dataclasses.replace(rendered, html=probe, text=probe)
        self._personalise = personalise

    def fill(self, *, unsubscribe_url: str, manage_url: str) -> tuple[str, str]:
        html, text = self._personalise(self._probe, unsubscribe_url=unsubscribe_url,
                                       manage_url=manage_url)
        return (self._join(self._html, html.split("\x00")),
                self._join(self._text, text.split("\x00")))

    def _join(self, parts: list[str], values: list[str]) -> str:
        by_mark = dict(zip(self._marks, values, strict=False))
        return "".join(by_mark.get(part, part) for part in parts)


def _fast_personalise(rendered: RenderedIssue, personalise: Personalise) -> _Fill:
    """``personalise`` bound to ``rendered``, through :class:`_SplitIssue` when possible."""
    def direct(*, unsubscribe_url: str, manage_url: str) -> tuple[str, str]:
        return personalise(rendered, unsubscribe_url=unsubscribe_url, manage_url=manage_url)

    if not dataclasses.is_dataclass(rendered):
        return direct
    try:
        split = _SplitIssue(rendered, personalise)
    except (ImportError, TypeError, ValueError):
        return direct
    # Trust the shortcut only if it gives exactly what personalise gives (escaping included).
    check = {"unsubscribe_url": "https://check.invalid/u?a=1&b=<2>", "manage_url": "https://check.invalid/m\"'"}
    return split.fill if split.fill(**check) == direct(**check) else direct


class MessageComposer:
    """Builds one recipient's :class:`OutgoingEmail` from the campaign's rendered issue.

    ``rendered`` is a ``mailer.render.RenderedIssue``; ``personalise`` defaults to
    ``mailer.render.personalise`` (injected in unit tests).
    """

    def __init__(self, rendered: RenderedIssue, settings: Settings, *, campaign_id: int | str,
                 issue_number: int, personalise: Personalise | None = None):
        if personalise is None:
            from mailer.render import personalise as render_personalise
            personalise = render_personalise
        self._rendered = rendered
        # A title may hold a line break (an AT Protocol record can): one Subject line all the same.
        self._subject = header_text(rendered.subject)
        self._fill = _fast_personalise(rendered, personalise)
        self._settings = settings
        self._base_url = settings.base_url.rstrip("/")
        self._campaign_id = str(campaign_id)
        self._static_headers = {
            wire.LIST_UNSUBSCRIBE_POST_HEADER: ONE_CLICK,
            wire.LIST_ID_HEADER: settings.list_id,
            wire.FEEDBACK_ID_HEADER: f"{campaign_id}:{issue_number}:newsletter:{settings.feedback_id_sender}",
        }
        self._mailto = _mailto(settings.unsubscribe_mailto)
        self._template: MessageTemplate | None = None
        self._template_lock = threading.Lock()

    def unsubscribe_url(self, subscriber_id: int) -> str:
        token = make_unsubscribe_token(self._settings.secret_key, subscriber_id)
        return f"{self._base_url}{wire.UNSUBSCRIBE_PATH}/{token}"

    def manage_url(self, subscriber_id: int) -> str:
        """The footer's "Manage" link: the reader's own page, signed apart from unsubscribing
        (a List-Unsubscribe URL, which providers read and log, cannot open that page)."""
        token = make_manage_token(self._settings.secret_key, subscriber_id)
        return f"{self._base_url}{wire.MANAGE_PATH}/{token}"

    def compose(self, delivery: ClaimedDelivery) -> OutgoingEmail:
        headers = {wire.DELIVERY_HEADER: str(delivery.id)}
        tags = {wire.CAMPAIGN_TAG: self._campaign_id, wire.DELIVERY_TAG: str(delivery.id)}
        return self._build(delivery.email, delivery.subscriber_id, headers, tags)

    def compose_templated(self, delivery: ClaimedDelivery) -> OutgoingEmail:
        """:meth:`compose` with the campaign's :meth:`template` and this reader's values in it,
        for a transport that sends many readers in one call (it may still send it whole)."""
        data = self._template_data(delivery.subscriber_id)
        if data is None:
            return self.compose(delivery)
        # Not the whole HTML and text for each reader (a join of ~100 KB): the template holds
        # them, and OutgoingEmail.whole() fills them in if the message goes alone after all.
        headers = {wire.DELIVERY_HEADER: str(delivery.id)}
        tags = {wire.CAMPAIGN_TAG: self._campaign_id, wire.DELIVERY_TAG: str(delivery.id)}
        return self._build(delivery.email, delivery.subscriber_id, headers, tags,
                           template=self.template(), template_data=data)

    def template(self) -> MessageTemplate:
        """The campaign's message as one template (made once): the same parts as
        :meth:`compose`, with the reader's tokens as variables in their links."""
        with self._template_lock:
            if self._template is None:
                self._template = self._make_template()
            return self._template

    def _make_template(self) -> MessageTemplate:
        nonce = uuid.uuid4().hex
        marks = {f"mailertoken{nonce}u": UNSUBSCRIBE_VARIABLE,
                 f"mailertoken{nonce}m": MANAGE_VARIABLE}
        mark_u, mark_m = marks
        html, text = self._fill(
            unsubscribe_url=f"{self._base_url}{wire.UNSUBSCRIBE_PATH}/{mark_u}",
            manage_url=f"{self._base_url}{wire.MANAGE_PATH}/{mark_m}")

        def variables(part: str) -> str:
            part = _literal_braces(part)
            for mark, name in marks.items():
                part = part.replace(mark, "{{" + name + "}}")
            return part

        return MessageTemplate(subject=_literal_braces(self._subject), html=variables(html),
                               text=variables(text), headers=dict(self._static_headers),
                               data={"lb": "{", "rb": "}"})

    def _template_data(self, subscriber_id: int) -> dict[str, str] | None:
        data = {UNSUBSCRIBE_VARIABLE: make_unsubscribe_token(self._settings.secret_key,
                                                             subscriber_id),
                MANAGE_VARIABLE: make_manage_token(self._settings.secret_key, subscriber_id)}
        return data if all(_URL_SAFE.match(value) for value in data.values()) else None

    def compose_test(self, address: str, subscriber_id: int | None) -> OutgoingEmail:
        """A test send outside the campaign: same message, no ledger row behind it. An address
        that is not a subscriber gets links for subscriber 0, which the web app refuses."""
        return self._build(address, subscriber_id or 0, {}, {wire.CAMPAIGN_TAG: "test"})

    def _build(self, to: str, subscriber_id: int, headers: dict[str, str],
               tags: dict[str, str], *, template: MessageTemplate | None = None,
               template_data: dict[str, str] | None = None) -> OutgoingEmail:
        url = self.unsubscribe_url(subscriber_id)
        if template is None:
            html, text = self._fill(unsubscribe_url=url,
                                    manage_url=self.manage_url(subscriber_id))
        else:
            html = text = ""
        list_unsubscribe = f"<{url}>" + (f", <{self._mailto}>" if self._mailto else "")
        return OutgoingEmail(
            to=to, sender=self._settings.from_, subject=self._subject, html=html,
            text=text, reply_to=self._settings.reply_to,
            headers={wire.LIST_UNSUBSCRIBE_HEADER: list_unsubscribe, **self._static_headers, **headers},
            tags=tags, template=template, template_data=template_data or {},
        )


def _mailto(value: str | None) -> str | None:
    if not value:
        return None
    address = value.removeprefix("mailto:")
    return f"mailto:{address}?subject=unsubscribe"
