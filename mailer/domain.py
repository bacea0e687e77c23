"""Pure domain types shared by every layer. Imports nothing from mailer but errors and figures.

Times are aware UTC ``datetime`` values everywhere (see :func:`utcnow`); the store's columns
refuse naive ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from mailer import figures


def address_key(address: str) -> str:
    """What two spellings of one address share (trimmed, case-folded): how events, imports and
    the ledger compare addresses. The spelling mailer stores is mailer.addresses'."""
    return address.strip().casefold()


def utcnow() -> datetime:
    """Aware UTC now, the one clock every stored timestamp uses."""
    return datetime.now(UTC)


# The sources of a reader's row that are imports, not sign-ups: the figures tell them apart.
CSV_IMPORT_SOURCE = "import"
IMPORT_SOURCES = frozenset({CSV_IMPORT_SOURCE, "mailchimp"})


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # signed up, confirmation mail sent, not confirmed yet
    ACTIVE = "active"  # confirmed: receives the newsletter
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # suppressed after a permanent bounce (or repeated transient ones)
    COMPLAINED = "complained"  # marked us as spam: never mailed again

    @property
    def receives_mail(self) -> bool:
        return self is SubscriberStatus.ACTIVE

    @property
    def suppressed(self) -> bool:
        return self in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


class DeliveryStatus(StrEnum):
    """One ledger row per (campaign, subscriber). See dispatch for the transitions."""

    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker, in flight
    SENT = "sent"  # the transport accepted it (provider message id kept)
    FAILED = "failed"  # gave up on it (reason kept)
    SKIPPED = "skipped"  # unsubscribed / suppressed before its turn
    UNKNOWN = "unknown"  # was in flight when the process died: maybe sent, maybe not

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)


class CampaignStatus(StrEnum):
    SENDING = "sending"
    STOPPED = "stopped"  # paused by an account error, a signal or --limit; resumable
    FINISHED = "finished"
    PAUSED = "paused"  # by the reputation breaker; only `mailer send --resume` goes on


class EventKind(StrEnum):
    """SES event types, normalised (``"Rendering Failure"`` becomes ``rendering_failure``)."""

    SEND = "send"
    DELIVERY = "delivery"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    REJECT = "reject"
    RENDERING_FAILURE = "rendering_failure"
    DELIVERY_DELAY = "delivery_delay"
    OPEN = "open"
    CLICK = "click"
    SUBSCRIPTION = "subscription"
    OTHER = "other"  # a type SES added after this code: kept, never acted on


class BounceType(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class Issue:
    """One newsletter issue, whatever file it came from.

    ``body`` is Markdown (TWiR source, or the Markdown-like text of a standard.site record) or an
    HTML fragment (the article body of a rendered page), as ``body_format`` says. Editor HTML
    comments may still be in a Markdown body; rendering drops them.
    """

    title: str
    body: str
    body_format: Literal["markdown", "html"] = "markdown"
    number: int | None = None
    date: date | None = None
    published_at: datetime | None = None  # Date header with its time, when it has one
    category: str | None = None
    tags: tuple[str, ...] = ()
    web_url: str | None = None  # where the issue lives on the web
    source_path: Path | None = None
    source_kind: Literal["markdown", "standard-site", "html"] = "markdown"
    # True when the body lost its link targets (standard.site text): the email must then point
    # readers at the web version prominently.
    links_stripped: bool = False
    # The inbox preview line an editor set (a Preheader: or Preview: header); None: derived.
    preview: str | None = None


@dataclass(frozen=True)
class OutgoingEmail:
    """One message for one recipient, fully personalised, ready for a transport."""

    to: str
    sender: str  # the From header
    subject: str
    html: str
    text: str
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # List-Unsubscribe, List-Id, ...
    tags: dict[str, str] = field(default_factory=dict)  # campaign / delivery ids for SES events
    # The same message as the campaign's shared template plus this reader's values, for a
    # transport that sends many readers in one call (SES SendBulkEmail); None: send it whole.
    # ``html`` and ``text`` may then be empty: :meth:`whole` fills them from the template.
    template: MessageTemplate | None = None
    template_data: dict[str, str] = field(default_factory=dict)

    def whole(self) -> OutgoingEmail:
        """This message with its HTML and text parts, for a transport that sends it alone."""
        if self.template is None or (self.html and self.text):
            return self
        html, text = self.template.fill(self.template_data)
        return replace(self, html=html, text=text)


@dataclass(frozen=True)
class MessageTemplate:
    """A campaign's message with each reader's parts left as ``{{name}}`` variables.

    Every literal ``{`` and ``}`` of the issue is itself written as a variable (``{{lb}}``,
    ``{{rb}}``, in ``data``), so code in an issue cannot be read as a variable; a reader's own
    values are URL-safe (``[A-Za-z0-9._-]``), unchanged by HTML escaping, so the result is the
    same whether the template engine escapes them or not. ``headers`` are the headers every
    reader's copy carries; the rest of an :class:`OutgoingEmail`'s headers are its own."""

    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)

    def fill(self, values: dict[str, str]) -> tuple[str, str]:
        """The HTML and text one reader gets (what the provider's template engine makes of
        it): every ``{{name}}`` replaced by its value."""
        data = {**self.data, **values}

        def value(match: re.Match[str]) -> str:
            return data[match.group(1)]

        return _TEMPLATE_VARIABLE.sub(value, self.html), _TEMPLATE_VARIABLE.sub(value, self.text)


_TEMPLATE_VARIABLE = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")


@dataclass(frozen=True)
class SendQuota:
    """What the provider allows right now (SES GetAccount)."""

    max_send_rate: float | None  # messages per second; None = no limit known
    max_24h: float | None  # None or -1 = unlimited
    sent_last_24h: float = 0.0
    sending_enabled: bool = True
    enforcement_status: str | None = None

    @property
    def remaining_24h(self) -> float | None:
        if self.max_24h is None or self.max_24h < 0:
            return None
        return max(0.0, self.max_24h - self.sent_last_24h)


@dataclass(frozen=True)
class DeliveryEvent:
    """One provider event about one recipient of one message (anymail's normalised event)."""

    kind: EventKind
    recipient: str
    occurred_at: datetime
    provider_message_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    delivery_id: int | None = None  # from our tag / header when present
    campaign_id: int | None = None
    bounce_type: BounceType | None = None
    bounce_subtype: str | None = None
    diagnostic: str | None = None  # DSN diagnostic / reject reason / complaint type
    raw: dict = field(default_factory=dict)  # the provider payload, kept whole
    event_id: str | None = None  # SNS MessageId (or another stable id), for dedup


@dataclass(frozen=True)
class Reputation:
    """A campaign's figures the reputation breaker watches (issue 11)."""

    sent: int = 0
    delivered: int = 0
    hard_bounces: int = 0
    complaints: int = 0

    @property
    def bounce_rate(self) -> float | None:
        return figures.bounce_rate(self.hard_bounces, self.sent)

    @property
    def complaint_rate(self) -> float | None:
        return figures.complaint_rate(self.complaints, self.delivered)

    def since(self, before: Reputation | None) -> Reputation:
        """What arrived after ``before`` (the figures when an operator resumed a paused send)."""
        if before is None:
            return self
        return Reputation(*(max(0, now - then) for now, then in (
            (self.sent, before.sent), (self.delivered, before.delivered),
            (self.hard_bounces, before.hard_bounces), (self.complaints, before.complaints))))
