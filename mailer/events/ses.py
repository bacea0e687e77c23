"""SES notifications → normalised :class:`~mailer.domain.DeliveryEvent` values. Pure.

Reads both formats SES publishes: classic feedback notifications (``notificationType``: Bounce,
Complaint, Delivery) and configuration-set event publishing (``eventType``: Send, Delivery,
Bounce, Complaint, Reject, "Rendering Failure", DeliveryDelay, Open, Click, Subscription). A type
SES adds later is read as :attr:`EventKind.OTHER`, named in its diagnostic, so it is stored and
shown rather than refused: SNS never retries a refusal, and the event would be lost. One event
per recipient the notification is about; the whole payload is kept on each in memory, and
:func:`recipient_parts` cuts it to each recipient's part for storage.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

from mailer.domain import BounceType, DeliveryEvent, EventKind, address_key
from mailer.errors import WebhookRejected
from mailer.wire import CAMPAIGN_TAG, DELIVERY_HEADER, DELIVERY_TAG

KINDS = {
    "send": EventKind.SEND,
    "delivery": EventKind.DELIVERY,
    "bounce": EventKind.BOUNCE,
    "complaint": EventKind.COMPLAINT,
    "reject": EventKind.REJECT,
    "rendering failure": EventKind.RENDERING_FAILURE,
    "renderingfailure": EventKind.RENDERING_FAILURE,
    "deliverydelay": EventKind.DELIVERY_DELAY,
    "open": EventKind.OPEN,
    "click": EventKind.CLICK,
    "subscription": EventKind.SUBSCRIPTION,
}

# Notification types that say something about the SNS set-up, not about a message.
SETUP_NOTIFICATIONS = {"amazonsnssubscriptionsucceeded"}

# The object of the payload that holds each kind's details.
DETAIL_KEYS = {
    EventKind.SEND: "send",
    EventKind.DELIVERY: "delivery",
    EventKind.BOUNCE: "bounce",
    EventKind.COMPLAINT: "complaint",
    EventKind.REJECT: "reject",
    EventKind.RENDERING_FAILURE: "failure",
    EventKind.DELIVERY_DELAY: "deliveryDelay",
    EventKind.OPEN: "open",
    EventKind.CLICK: "click",
    EventKind.SUBSCRIPTION: "subscription",
}

BOUNCE_TYPES = {
    "permanent": BounceType.PERMANENT,
    "transient": BounceType.TRANSIENT,
    "undetermined": BounceType.UNDETERMINED,
}


class MalformedEvent(WebhookRejected):
    """An SES payload mailer cannot read (always 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


def load_payload(payload: dict | str | bytes) -> dict:
    if isinstance(payload, dict):
        return payload
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEvent("the SES notification is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedEvent("the SES notification is not a JSON object")
    return document


def payload_digest(payload: dict) -> str:
    """A stable id for a payload: the same SES event published twice gets the same digest."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def type_name(payload: dict) -> str:
    """The event type as SES wrote it (``eventType``, or the classic ``notificationType``)."""
    name = payload.get("eventType", payload.get("notificationType"))
    if not isinstance(name, str) or not name.strip():
        raise MalformedEvent("the SES notification has neither eventType nor notificationType")
    return name.strip()


def event_kind(payload: dict) -> EventKind | None:
    """The normalised kind (OTHER for a type mailer does not know yet), or None for set-up
    notices that concern no message."""
    folded = type_name(payload).lower()
    if folded in SETUP_NOTIFICATIONS:
        return None
    return KINDS.get(folded) or KINDS.get(folded.replace(" ", "")) or EventKind.OTHER


def detail_key(kind: EventKind, name: str) -> str:
    """The payload's object with the kind's details. SES names it after the type in camel case
    ("DeliveryDelay" → "deliveryDelay"), so a new type's details are found the same way."""
    if kind is EventKind.OTHER:
        joined = "".join(name.split())
        return joined[:1].lower() + joined[1:]
    return DETAIL_KEYS[kind]


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def flatten_tags(mail: dict) -> dict[str, str]:
    """SES gives each tag as a list of values; ours have exactly one."""
    tags = mail.get("tags")
    if not isinstance(tags, dict):
        return {}
    flat: dict[str, str] = {}
    for name, values in tags.items():
        if isinstance(values, list) and values:
            flat[str(name)] = str(values[0])
        elif isinstance(values, str):
            flat[str(name)] = values
    return flat


def header_value(mail: dict, name: str) -> str | None:
    """A header from ``mail.headers`` (present unless the headers were truncated)."""
    headers = mail.get("headers")
    if not isinstance(headers, list):
        return None
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == name.lower():
            value = header.get("value")
            return value if isinstance(value, str) else None
    return None


def text_or_none(value: object, limit: int | None = None) -> str | None:
    """A field SES documents as a string; anything else in its place is treated as absent."""
    if not isinstance(value, str):
        return None
    return value[:limit] if limit else value


def as_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if 0 < number < 2**63 else None
    return None


def delivery_id_of(mail: dict, tags: dict[str, str]) -> int | None:
    """Our delivery id: from the EmailTags first, then from the X-Mailer-Delivery header."""
    return as_id(tags.get(DELIVERY_TAG)) or as_id(header_value(mail, DELIVERY_HEADER))


def recipient_entries(kind: EventKind, payload: dict, detail: dict) -> list[dict]:
    """One entry per recipient: ``{"address": ..., "diagnostic": ..., "status": ...}``."""
    if kind is EventKind.BOUNCE:
        listed = detail.get("bouncedRecipients")
    elif kind is EventKind.COMPLAINT:
        listed = detail.get("complainedRecipients")
    elif kind is EventKind.DELIVERY:
        listed = detail.get("recipients")
    elif kind is EventKind.DELIVERY_DELAY:
        listed = detail.get("delayedRecipients")
    else:
        listed = None
    if not isinstance(listed, list) or not listed:
        listed = payload.get("mail", {}).get("destination")
    entries: list[dict[str, str | None]] = []
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, str):
            entries.append({"address": item})
        elif isinstance(item, dict) and isinstance(item.get("emailAddress"), str):
            entries.append({
                "address": item["emailAddress"],
                "diagnostic": text_or_none(item.get("diagnosticCode")),
                "status": text_or_none(item.get("status")),
            })
    return [entry for entry in entries if (entry["address"] or "").strip()]


# The one field of each event type's detail that says what happened to all its recipients.
_DIAGNOSTIC_FIELD = {
    EventKind.COMPLAINT: "complaintFeedbackType",
    EventKind.REJECT: "reason",
    EventKind.RENDERING_FAILURE: "errorMessage",
    EventKind.DELIVERY_DELAY: "delayType",
    EventKind.DELIVERY: "smtpResponse",
    EventKind.CLICK: "link",
}


def kind_diagnostic(kind: EventKind, detail: dict) -> str | None:
    """What the event says for all its recipients: a reason, a complaint type, a link."""
    if kind is EventKind.SUBSCRIPTION:
        preferences = detail.get("newTopicPreferences")
        if isinstance(preferences, dict) and preferences.get("unsubscribeAll") is True:
            return "unsubscribeAll"
        return text_or_none(detail.get("source"))
    field = _DIAGNOSTIC_FIELD.get(kind)
    return text_or_none(detail.get(field)) if field else None


def bounce_type_of(detail: dict) -> BounceType | None:
    value = detail.get("bounceType")
    if not isinstance(value, str):
        return None
    return BOUNCE_TYPES.get(value.lower(), BounceType.UNDETERMINED)


def parse_notification(
    payload: dict | str | bytes, *, event_id: str | None = None
) -> list[DeliveryEvent]:
    """One :class:`DeliveryEvent` per recipient of an SES notification (bare JSON or dict).

    ``event_id`` defaults to a digest of the payload, so the same notification always yields
    the same ids whatever route it came by (web hook, queue, replay file). A field of the wrong
    type is ignored where SES marks it optional, and refused (:class:`MalformedEvent`, a 400)
    where the event cannot be read without it.
    """
    document = load_payload(payload)
    kind = event_kind(document)
    if kind is None:
        return []
    mail = document.get("mail")
    if not isinstance(mail, dict):
        raise MalformedEvent("the SES notification has no mail object")
    name = type_name(document)
    detail = document.get(detail_key(kind, name))
    detail = detail if isinstance(detail, dict) else {}
    occurred_at = parse_time(detail.get("timestamp")) or parse_time(mail.get("timestamp"))
    if occurred_at is None:
        raise MalformedEvent("the SES notification has no readable timestamp")
    entries = recipient_entries(kind, document, detail)
    if not entries:
        raise MalformedEvent("the SES notification names no recipient")
    tags = flatten_tags(mail)
    message_id = mail.get("messageId") if isinstance(mail.get("messageId"), str) else None
    delivery_id = delivery_id_of(mail, tags)
    campaign_id = as_id(tags.get(CAMPAIGN_TAG))
    bounce_type = bounce_type_of(detail) if kind is EventKind.BOUNCE else None
    bounce_subtype = (text_or_none(detail.get("bounceSubType"), 64)
                      if kind is EventKind.BOUNCE else None)
    dedup_id = event_id or f"sha256:{payload_digest(document)}"
    shared_diagnostic = (f"SES event type {name[:60]!r}, unknown to mailer: kept, not acted on"
                         if kind is EventKind.OTHER else kind_diagnostic(kind, detail))
    return [
        DeliveryEvent(
            kind=kind, recipient=(entry["address"] or "").strip(), occurred_at=occurred_at,
            diagnostic=entry.get("diagnostic") or entry.get("status") or shared_diagnostic,
            provider_message_id=message_id, tags=tags, delivery_id=delivery_id,
            campaign_id=campaign_id, bounce_type=bounce_type, bounce_subtype=bounce_subtype,
            raw=document, event_id=dedup_id,
        )
        for entry in entries
    ]


def event_key(event: DeliveryEvent) -> str:
    """The dedup key of one event: the same key means the same event, seen again."""
    source = event.event_id or f"sha256:{payload_digest(event.raw)}"
    digest = hashlib.sha256(
        f"{source}\n{event.kind.value}\n{event.recipient.lower()}".encode()
    ).hexdigest()
    return f"{event.kind.value}:{digest}"


# The lists of a payload that name its recipients: (object, key), "mail" for the mail object.
RECIPIENT_LISTS = (
    ("bounce", "bouncedRecipients"), ("complaint", "complainedRecipients"),
    ("delivery", "recipients"), ("deliveryDelay", "delayedRecipients"),
    ("mail", "destination"),
)
COMMON_HEADER_LISTS = ("to", "cc", "bcc")
_ANGLE_ADDRESS = re.compile(r"<([^<>]*)>\s*$")


def _listed_address(item: object) -> str:
    """The address an entry of a recipient list names: a string, "Name <addr>", or an object."""
    if isinstance(item, dict):
        item = item.get("emailAddress")
    if not isinstance(item, str):
        return ""
    match = _ANGLE_ADDRESS.search(item)
    return address_key(match.group(1) if match else item)


def _by_address(listed: list) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for item in listed:
        grouped.setdefault(_listed_address(item), []).append(item)
    return grouped


def recipient_parts(payload: dict) -> Callable[[str], dict]:
    """``part(address)``: the payload with each list of recipients cut to that address's entries.

    Everything else (the mail's id, tags and headers, the bounce type) is kept as SES sent it.
    Stored per event, a notification for 3,000 recipients costs 3,000 small parts instead of
    3,000 copies of every recipient, and forgetting one reader leaves no trace of them on the
    other readers' events. Grouping once makes it linear in the recipients.
    """
    # (path to the dict holding the list, key, entries by address)
    places: list[tuple[tuple[str, ...], str, dict[str, list]]] = []
    for holder, key in RECIPIENT_LISTS:
        owner = payload.get(holder)
        if isinstance(owner, dict) and isinstance(owner.get(key), list):
            places.append(((holder,), key, _by_address(owner[key])))
    mail = payload.get("mail")
    common = mail.get("commonHeaders") if isinstance(mail, dict) else None
    for key in COMMON_HEADER_LISTS if isinstance(common, dict) else ():
        assert isinstance(common, dict)  # narrowed by the loop's guard; mypy cannot see it
        if isinstance(common.get(key), list):
            places.append((("mail", "commonHeaders"), key, _by_address(common[key])))

    def part(address: str) -> dict:
        folded = address_key(address)
        copy = dict(payload)
        for path, key, grouped in places:
            owner = copy
            for name in path:  # copy each dict on the way down, never change the payload
                owner[name] = dict(owner[name])
                owner = owner[name]
            owner[key] = grouped.get(folded, [])
        return copy

    return part
