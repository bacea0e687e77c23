"""One reader's message from the campaign's rendered issue: the issue is rendered once per
campaign and only personalised (two string replacements) per recipient."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable
from typing import Any

from mailer import wire
from mailer.config import Settings
from mailer.domain import OutgoingEmail
from mailer.message import header_text
from mailer.store.ledger import ClaimedDelivery
from mailer.tokens import make_manage_token, make_unsubscribe_token

ONE_CLICK = wire.ONE_CLICK


# -- messages ----------------------------------------------------------------------------------

class _SplitIssue:
    """The rendered issue cut once at its per-recipient links, so filling one reader in is a
    join of a few parts instead of scanning ~100 KB of HTML and text again (~350 us each time).

    ``personalise`` still decides everything: the cut points are where it puts two random
    marks, and each reader's escaped links come from running it on a tiny copy of the issue
    holding only the placeholders.
    """

    def __init__(self, rendered: Any, personalise: Callable[..., tuple[str, str]]) -> None:
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


def _fast_personalise(rendered: Any, personalise: Callable[..., tuple[str, str]]):
    """``personalise`` bound to ``rendered``, through :class:`_SplitIssue` when possible."""
    def direct(**links: str) -> tuple[str, str]:
        return personalise(rendered, **links)

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

    def __init__(self, rendered: Any, settings: Settings, *, campaign_id: int | str,
                 issue_number: int, personalise: Callable[..., tuple[str, str]] | None = None):
        if personalise is None:
            from mailer.render import personalise as personalise
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

    def compose_test(self, address: str, subscriber_id: int | None) -> OutgoingEmail:
        """A test send outside the campaign: same message, no ledger row behind it. An address
        that is not a subscriber gets links for subscriber 0, which the web app refuses."""
        return self._build(address, subscriber_id or 0, {}, {wire.CAMPAIGN_TAG: "test"})

    def _build(self, to: str, subscriber_id: int, headers: dict[str, str],
               tags: dict[str, str]) -> OutgoingEmail:
        url = self.unsubscribe_url(subscriber_id)
        html, text = self._fill(unsubscribe_url=url, manage_url=self.manage_url(subscriber_id))
        list_unsubscribe = f"<{url}>" + (f", <{self._mailto}>" if self._mailto else "")
        return OutgoingEmail(
            to=to, sender=self._settings.from_, subject=self._subject, html=html,
            text=text, reply_to=self._settings.reply_to,
            headers={wire.LIST_UNSUBSCRIBE_HEADER: list_unsubscribe, **self._static_headers, **headers},
            tags=tags,
        )


def _mailto(value: str | None) -> str | None:
    if not value:
        return None
    address = value.removeprefix("mailto:")
    return f"mailto:{address}?subject=unsubscribe"
