"""SNS HTTP(S) envelopes: parsing and signature verification. Pure: no database, no network.

The signing certificate is obtained through a *fetcher* the caller passes in (the web app and the
CLI own the real https fetcher; tests pass one that serves a certificate they generated), so
nothing here can be talked into weakening the production checks.

Every refusal is a :class:`~mailer.errors.WebhookRejected` carrying a 4xx status.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailer.errors import WebhookRejected

CertFetcher = Callable[[str], bytes]
"""Takes a SigningCertURL that passed :func:`check_cert_url`, returns the PEM certificate."""

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
MESSAGE_TYPES = (NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION)

# The fields AWS signs, in the order it signs them (Subject only when present).
NOTIFICATION_SIGNED_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_SIGNED_FIELDS = (
    "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
)

SIGNATURE_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}

# sns.<region>.amazonaws.com and the China partition's sns.<region>.amazonaws.com.cn, nothing else.
SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?")

# SNS keeps a message's Timestamp (when it was published) on every retry, and retries an HTTP(S)
# endpoint for at most an hour: older messages are replays, never SNS. A few minutes of clock
# skew either way are allowed.
MAX_MESSAGE_AGE = timedelta(hours=1, minutes=5)
MAX_CLOCK_SKEW = timedelta(minutes=5)

RAW_DELIVERY_HINT = (
    "this is a bare SES notification without the SNS envelope: turn 'raw message delivery' off "
    "on the SNS subscription of this web hook"
)


@dataclass(frozen=True)
class SnsEnvelope:
    """One SNS HTTP(S) message body, as SNS sent it."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str
    signing_cert_url: str
    subject: str | None = None
    subscribe_url: str | None = None
    token: str | None = None
    unsubscribe_url: str | None = None
    fields: dict = field(default_factory=dict, repr=False)  # the body as received

    @property
    def is_notification(self) -> bool:
        return self.type == NOTIFICATION


def looks_like_ses_payload(document: object) -> bool:
    """A bare SES notification: what SNS posts when raw message delivery is on."""
    return isinstance(document, dict) and "Type" not in document and (
        "eventType" in document or "notificationType" in document or "mail" in document
    )


def is_envelope(document: object) -> bool:
    return isinstance(document, dict) and isinstance(document.get("Type"), str) and (
        "Message" in document
    )


def parse_envelope(body: bytes | str) -> SnsEnvelope:
    """Read an SNS HTTP body; refuse malformed JSON, raw SES payloads and incomplete envelopes."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("the body is not JSON: expected an SNS message", 400) from None
    except RecursionError:  # [[[[…: nested deeper than any SNS message
        raise WebhookRejected("the body is nested too deeply to be an SNS message", 400) from None
    if looks_like_ses_payload(document):
        raise WebhookRejected(RAW_DELIVERY_HINT, 400)
    if not isinstance(document, dict) or "Type" not in document:
        raise WebhookRejected("the body is not an SNS message (no Type field)", 400)
    return envelope_from_fields(document)


def envelope_from_fields(document: dict) -> SnsEnvelope:
    message_type = document.get("Type")
    if message_type not in MESSAGE_TYPES:
        raise WebhookRejected(f"unknown SNS message type {str(message_type)[:40]!r}", 400)
    required = ["MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature",
                "SigningCertURL"]
    if message_type != NOTIFICATION:
        required += ["SubscribeURL", "Token"]
    missing = [name for name in required if not isinstance(document.get(name), str)]
    if missing:
        raise WebhookRejected(f"SNS {message_type} without {', '.join(missing)}", 400)
    subject = document.get("Subject")
    if subject is not None and not isinstance(subject, str):
        raise WebhookRejected("SNS Subject must be a string", 400)
    return SnsEnvelope(
        type=message_type,
        message_id=document["MessageId"],
        topic_arn=document["TopicArn"],
        message=document["Message"],
        timestamp=document["Timestamp"],
        signature_version=document["SignatureVersion"],
        signature=document["Signature"],
        signing_cert_url=document["SigningCertURL"],
        subject=subject,
        subscribe_url=document.get("SubscribeURL"),
        token=document.get("Token"),
        unsubscribe_url=document.get("UnsubscribeURL"),
        fields=document,
    )


def string_to_sign(envelope: SnsEnvelope) -> bytes:
    """``Name\\nValue\\n`` for each signed field, in AWS's order, skipping absent ones."""
    names = (NOTIFICATION_SIGNED_FIELDS if envelope.is_notification
             else CONFIRMATION_SIGNED_FIELDS)
    parts = []
    for name in names:
        value = envelope.fields.get(name)
        if value is None:
            continue
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


_CONTROL_CHARACTER = re.compile(r"[\x00-\x20\x7f]")


def is_sns_https_url(url: str) -> bool:
    """https on exactly an SNS host: no userinfo, no port, no look-alike suffix."""
    if not isinstance(url, str) or _CONTROL_CHARACTER.search(url):
        return False  # urlsplit silently drops tab, CR and LF; an HTTP client would not
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and hostname is not None
        and parts.netloc == hostname  # refuses user@, :port and upper-case tricks
        and port is None
        and SNS_HOST.fullmatch(hostname) is not None
    )


def check_cert_url(url: str) -> str:
    """Refuse any SigningCertURL but https://sns.<region>.amazonaws.com[.cn]/<name>.pem."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or not is_sns_https_url(url)
        or not parts.path.endswith(".pem")
        or parts.query
        or parts.fragment
        or "\\" in url
    ):
        raise WebhookRejected(
            f"SigningCertURL {url[:200]!r} is not an https .pem on an SNS host", 403
        )
    return url


def parse_timestamp(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC)


def check_timestamp(envelope: SnsEnvelope, now: datetime | None = None) -> None:
    """Refuse a message published outside SNS's retry span: a captured message replayed later."""
    moment = parse_timestamp(envelope.timestamp)
    if moment is None:
        raise WebhookRejected(f"SNS Timestamp {envelope.timestamp[:40]!r} is not a time", 400)
    now = now or datetime.now(UTC)
    if moment < now - MAX_MESSAGE_AGE:
        raise WebhookRejected(
            f"SNS Timestamp {envelope.timestamp[:40]} is older than SNS retries: a replay", 403)
    if moment > now + MAX_CLOCK_SKEW:
        raise WebhookRejected(f"SNS Timestamp {envelope.timestamp[:40]} is in the future", 403)


def check_topic(envelope: SnsEnvelope, allowed_topics: Iterable[str]) -> None:
    """A valid signature proves only that *some* AWS topic sent it: only ours may."""
    if envelope.topic_arn not in set(allowed_topics):
        raise WebhookRejected(
            f"topic {envelope.topic_arn[:256]!r} is not on MAILER_SNS_TOPIC_ARNS", 403
        )


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise WebhookRejected("the SNS signing certificate cannot be read", 403) from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise WebhookRejected("the SNS signing certificate has expired or is not valid yet", 403)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRejected("the SNS signing certificate does not hold an RSA key", 403)
    return key


def verify_signature(envelope: SnsEnvelope, certificate_pem: bytes) -> None:
    """SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA; anything else is refused."""
    algorithm = SIGNATURE_HASHES.get(envelope.signature_version)
    if algorithm is None:
        raise WebhookRejected(
            f"unsupported SNS SignatureVersion {envelope.signature_version[:10]!r}", 403
        )
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected("the SNS signature is not base64", 403) from None
    key = load_public_key(certificate_pem)
    try:
        key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise WebhookRejected("the SNS signature does not match the message", 403) from None


def verify_envelope(
    envelope: SnsEnvelope, *, allowed_topics: Iterable[str], fetch_cert: CertFetcher
) -> None:
    """Every check a message must pass before anything acts on it.

    The topic, the certificate URL and the Timestamp are checked before any fetch, so a forged
    message cannot make the server fetch from anywhere but an SNS host.
    """
    check_topic(envelope, allowed_topics)
    check_cert_url(envelope.signing_cert_url)
    check_timestamp(envelope)
    if envelope.signature_version not in SIGNATURE_HASHES:
        raise WebhookRejected(
            f"unsupported SNS SignatureVersion {envelope.signature_version[:10]!r}", 403
        )
    verify_signature(envelope, fetch_cert(envelope.signing_cert_url))


def check_subscribe_url(envelope: SnsEnvelope) -> str:
    """The URL to visit to confirm a subscription, if it is an https SNS URL."""
    url = envelope.subscribe_url or ""
    if not is_sns_https_url(url):
        raise WebhookRejected(f"SubscribeURL {url[:200]!r} is not an https SNS URL", 403)
    return url


class CertificateCache:
    """Fetch each signing certificate once (SNS signs every message with the same few).

    Wraps any fetcher; bounded, so a stream of distinct (valid-looking) URLs cannot grow it
    without limit. Safe to share between threads.
    """

    def __init__(self, fetcher: CertFetcher, max_entries: int = 32) -> None:
        self._fetcher = fetcher
        self._max_entries = max_entries
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        check_cert_url(url)
        with self._lock:
            if url in self._entries:
                self._entries.move_to_end(url)
                return self._entries[url]
        pem = self._fetcher(url)
        load_public_key(pem)  # never cache something that is not a usable certificate
        with self._lock:
            self._entries[url] = pem
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return pem
