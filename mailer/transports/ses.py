"""Amazon SES v2 through boto3: ``send_email`` with a Raw MIME message.

Raw keeps every header of ours verbatim (List-Unsubscribe, Feedback-ID, X-Mailer-Delivery, ...),
which SES's Simple content would limit or drop. Credentials come from the standard AWS chain.

botocore is told never to retry on its own (``total_max_attempts`` 1): a throttled send must
reach the dispatcher, which owns the rate and the backoff, instead of being hidden (and slowed)
inside botocore; and botocore's retry rules also resend after a read timeout or a closed
connection, when SES may already have taken the message.

Failures are classified by what we know (issue 14): nothing reached SES (connection refused or
timed out, DNS) or SES answered with a throttle or a 5xx → retry is safe; the request was written
and the answer lost (read timeout, connection closed or reset) → :class:`AnswerLost`, never
retried: the row becomes ``unknown`` until an SES event settles it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from email.utils import formataddr, parseaddr
from typing import Required, TypedDict, TypeVar

import boto3
from botocore.parsers import ResponseParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProxyConnectionError,
    SSLError,
)

from mailer.domain import MessageTemplate, OutgoingEmail, SendQuota
from mailer.errors import (
    AccountError,
    AnswerLost,
    QuotaExhausted,
    Rejected,
    TemporaryFailure,
    Throttled,
    TransportError,
)
from mailer.message import build_mime
from mailer.transports.ses_reads import (
    REFUSED_CREDENTIALS,
    UNKNOWN_OPERATION,
    aws_client,
    client_config,
    configuration_set_exists,
    identity_state,
    read_account,
)

NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, "
    "or run with an instance role)"
)

_THROTTLE_CODES = {"TooManyRequestsException", "Throttling", "ThrottlingException"}
_ACCOUNT_CODES = {
    "SendingPausedException", "AccountSuspendedException", "MailFromDomainNotVerifiedException",
    "NotFoundException", *REFUSED_CREDENTIALS,
}
# SendBulkEmail's answer per entry, as mailer's errors (SUCCESS is the message id).
_BULK_THROTTLED = {"ACCOUNT_THROTTLED"}
_BULK_QUOTA = {"ACCOUNT_DAILY_QUOTA_EXCEEDED"}
_BULK_ACCOUNT = {"MAIL_FROM_DOMAIN_NOT_VERIFIED", "CONFIGURATION_SET_NOT_FOUND",
                 "TEMPLATE_NOT_FOUND", "ACCOUNT_SUSPENDED", "INVALID_SENDING_POOL_NAME",
                 "ACCOUNT_SENDING_PAUSED", "CONFIGURATION_SET_SENDING_PAUSED"}
_BULK_REJECTED = {"MESSAGE_REJECTED", "INVALID_PARAMETER"}
# An entry's status written as SendEmail's error code for the same cause, so a reader's
# failure reads the same whichever call it went in.
_BULK_CODES = {"MESSAGE_REJECTED": "MessageRejected", "ACCOUNT_THROTTLED": "TooManyRequestsException",
               "ACCOUNT_DAILY_QUOTA_EXCEEDED": "LimitExceededException",
               "ACCOUNT_SENDING_PAUSED": "SendingPausedException",
               "ACCOUNT_SUSPENDED": "AccountSuspendedException",
               "MAIL_FROM_DOMAIN_NOT_VERIFIED": "MailFromDomainNotVerifiedException",
               "TRANSIENT_FAILURE": "InternalFailure"}
MAX_BULK = 50  # SES's limit of BulkEmailEntries per SendBulkEmail
_TAG_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")
_TAG_MAX = 256

_Answer = TypeVar("_Answer")
# SES's name/value pairs (EmailTags, Headers) and one BulkEmailEntries item, as boto3 takes them.
_NameValue = dict[str, str]
_BulkEntry = dict[str, object]


class _SendEmailRequest(TypedDict, total=False):
    """SES v2 SendEmail's parameters as mailer sends them: the whole message as Raw MIME."""
    FromEmailAddress: Required[str]
    Destination: Required[dict[str, list[str]]]
    Content: Required[dict[str, dict[str, bytes]]]
    EmailTags: list[_NameValue]
    ConfigurationSetName: str


class _SendBulkEmailRequest(TypedDict, total=False):
    """SES v2 SendBulkEmail's parameters: one inline template, each reader's entry."""
    FromEmailAddress: Required[str]
    DefaultContent: Required[dict[str, dict[str, object]]]
    BulkEmailEntries: Required[list[_BulkEntry]]
    ReplyToAddresses: list[str]
    ConfigurationSetName: str


class SesTransport:
    name = "ses"
    notice = None

    def __init__(
        self,
        *,
        sender: str,
        region: str = "us-east-1",
        configuration_set: str | None = None,
        endpoint_url: str | None = None,
        max_connections: int = 32,
        read_timeout: float = 30,
        bulk: bool = True,
    ) -> None:
        self.sender = sender
        self.can_batch = bulk
        self.batch_notice: str | None = None
        self.max_batch = MAX_BULK
        self._batch_lock = threading.Lock()
        self.region = region
        self.configuration_set = configuration_set
        self.endpoint_url = endpoint_url
        self._session = boto3.session.Session()
        # One attempt: botocore would resend after a lost answer (a second copy).
        config = client_config(attempts=1, connect_timeout=10, read_timeout=read_timeout,
                               max_connections=max(1, max_connections))
        # One client for every thread: botocore clients are thread-safe, sessions are not.
        self._client = aws_client(self._session, "sesv2", region=region,
                                  endpoint_url=endpoint_url, config=config)

    # -- before a send -------------------------------------------------------------------------

    def preflight(self) -> SendQuota | None:
        """Credentials, account state, sender identity and configuration set, in that order."""
        if self._session.get_credentials() is None:
            raise AccountError(NO_CREDENTIALS)
        quota = self._account_quota()
        self._check_sender_verified()
        if self.configuration_set:
            self._check_configuration_set()
        return quota

    def _account_quota(self) -> SendQuota | None:
        account = self._call(read_account, sesv2=self._client)
        if account is None:
            return None  # a local endpoint without GetAccount (moto_server): quota unknown
        if account.paused:
            raise AccountError(f"sending is paused for this SES account in {self.region} "
                               "(GetAccount: SendingEnabled is false)")
        if account.shut_down:
            raise AccountError(f"this SES account in {self.region} is shut down "
                               "(EnforcementStatus SHUTDOWN)")
        return account.send_quota()

    def _check_sender_verified(self) -> None:
        address = _bare_address(self.sender)
        domain = address.rpartition("@")[2]
        for identity in (address, domain):
            if self._call(identity_state, sesv2=self._client, identity=identity) == "verified":
                return
        raise AccountError(
            f"sender {address} is not a verified SES identity in {self.region} (neither the "
            f"address nor the domain {domain}): verify it in SES or change MAILER_FROM")

    def _check_configuration_set(self) -> None:
        if not self._call(configuration_set_exists, sesv2=self._client,
                          name=self.configuration_set):
            raise AccountError(
                f"SES configuration set {self.configuration_set!r} "
                f"(MAILER_SES_CONFIGURATION_SET) does not exist in {self.region}")

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: OutgoingEmail) -> str:
        mime = build_mime(message)
        request: _SendEmailRequest = {
            "FromEmailAddress": mime.envelope_from,
            "Destination": {"ToAddresses": [mime.recipient]},
            "Content": {"Raw": {"Data": mime.data}},
        }
        tags = ses_tags(message.tags)
        if tags:
            request["EmailTags"] = tags
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        response = self._call(self._client.send_email, sender=mime.envelope_from, **request)
        return response["MessageId"]

    def send_batch(self, messages: Sequence[OutgoingEmail]) -> list[str | TransportError]:
        """SendBulkEmail for messages sharing one template, 50 a call; the rest one by one.
        An account or endpoint without SendBulkEmail (404, BadRequest: nothing was sent) turns
        batching off for good, with a notice, and these messages go one by one."""
        results: list[str | TransportError | None] = [None] * len(messages)
        groups: dict[int, list[int]] = {}
        for index, message in enumerate(messages):
            if message.template is not None and self.can_batch:
                groups.setdefault(id(message.template), []).append(index)
        for indexes in groups.values():
            for start in range(0, len(indexes), MAX_BULK):
                chunk = indexes[start:start + MAX_BULK]
                answers = self._send_bulk([messages[i] for i in chunk])
                if answers is None:
                    break  # no SendBulkEmail here: these go one by one below
                for index, answer in zip(chunk, answers, strict=True):
                    results[index] = answer
        for index, message in enumerate(messages):
            if results[index] is None:
                results[index] = self._send_one(message)
        return [result for result in results if result is not None]

    def _send_one(self, message: OutgoingEmail) -> str | TransportError:
        try:
            return self.send(message.whole())
        except (Rejected, TemporaryFailure, AccountError, AnswerLost) as error:
            return error

    def _send_bulk(self, messages: list[OutgoingEmail]) -> list[str | TransportError] | None:
        template = messages[0].template
        assert template is not None
        first = messages[0]
        request: _SendBulkEmailRequest = {
            "FromEmailAddress": _from_address(first.sender),
            "DefaultContent": {"Template": {
                "TemplateContent": {"Subject": template.subject, "Html": template.html,
                                    "Text": template.text},
                "TemplateData": json.dumps(template.data),
                "Headers": [{"Name": name, "Value": value}
                            for name, value in template.headers.items()],
            }},
            "BulkEmailEntries": [_bulk_entry(message, template) for message in messages],
        }
        if first.reply_to:
            request["ReplyToAddresses"] = [first.reply_to]
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            response = self._call(self._client.send_bulk_email,
                                  sender=_bare_address(first.sender), **request)
        except AccountError as error:
            if not _no_bulk(error):
                raise
            self._turn_batching_off(str(error))
            return None
        except Rejected as error:
            if getattr(error, "ses_code", "") != "BadRequestException":
                raise
            self._turn_batching_off(str(error))
            return None
        entries = response.get("BulkEmailEntryResults") or []
        if len(entries) != len(messages):
            # Cannot tell which reader each answer is for: as good as no answer.
            raise AnswerLost(f"SES SendBulkEmail answered {len(entries)} results for "
                             f"{len(messages)} messages")
        return [_bulk_result(entry) for entry in entries]

    def _turn_batching_off(self, reason: str) -> None:
        with self._batch_lock:
            if self.can_batch:
                self.can_batch = False
                self.batch_notice = (
                    f"SendBulkEmail is not available ({reason}); sending one message per "
                    "call instead (set MAILER_SES_BULK=off to skip the try)")

    def close(self) -> None:
        self._client.close()

    # -- errors --------------------------------------------------------------------------------

    def _call(self, operation: Callable[..., _Answer], sender: str | None = None,
              **kwargs: object) -> _Answer:
        try:
            return operation(**kwargs)
        except ClientError as error:
            raise ses_error(error, sender) from None
        except (NoCredentialsError, PartialCredentialsError):
            raise AccountError(NO_CREDENTIALS) from None
        except BotoCoreError as error:
            raise connection_error(error) from None


def connection_error(error: BotoCoreError) -> TransportError:
    """A failure with no answer from SES, classified by whether the request may have arrived."""
    if isinstance(error, SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(error):
        return AccountError(f"SES endpoint's TLS certificate is not trusted: {error}")
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)) \
            and not isinstance(error, SSLError):
        # Refused, timed out while connecting, DNS: nothing was written. Safe to retry.
        return TemporaryFailure(f"cannot reach SES at {error.kwargs.get('endpoint_url')}: "
                                f"{error}")
    if isinstance(error, (HTTPClientError, SSLError, ResponseParserError)):
        # Read timeout, connection closed or reset, an answer we cannot read: the request
        # went out, so SES may have taken the message.
        return AnswerLost(f"SES answer lost after the request was sent, the message may or may "
                          f"not have been accepted ({type(error).__name__}: {error})")
    return TemporaryFailure(f"SES request failed before it was sent: {error}")


def ses_error(error: ClientError, sender: str | None = None) -> TransportError:
    """Map a botocore ClientError onto mailer's error tree, keeping SES's own message."""
    details = error.response.get("Error") or {}
    code = str(details.get("Code") or "")
    text = str(details.get("Message") or "").strip() or code
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    line = f"SES {code or status}: {_one_line(text)}"
    mapped: TransportError
    if "daily message quota" in text.lower() or code == "LimitExceededException":
        mapped = QuotaExhausted(line)
    elif code in _THROTTLE_CODES or status == 429:
        mapped = Throttled(line)
    elif code in _ACCOUNT_CODES or status in (401, 403):
        mapped = AccountError(line)
    elif code == "MessageRejected":
        mapped = _rejected_or_account(line, text, sender)
    elif code in UNKNOWN_OPERATION or status == 404:
        mapped = AccountError(line)
    elif status >= 500 or code in ("InternalFailure", "ServiceUnavailable"):
        mapped = TemporaryFailure(line)
    elif code == "BadRequestException":
        mapped = Rejected(line)
    else:
        mapped = TemporaryFailure(line)
    mapped.ses_code = code or str(status)
    return mapped


def _rejected_or_account(line: str, text: str, sender: str | None) -> TransportError:
    # SES answers an unverified *sender* with MessageRejected too; that stops every message,
    # not just this recipient's.
    lowered = text.lower()
    if sender and sender.lower() in lowered and ("not verified" in lowered
                                                 or "authority" in lowered):
        return AccountError(line)
    return Rejected(line)


def _bulk_entry(message: OutgoingEmail, template: MessageTemplate) -> _BulkEntry:
    own = {name: value for name, value in message.headers.items()
           if template.headers.get(name) != value}
    entry: _BulkEntry = {
        "Destination": {"ToAddresses": [message.to]},
        "ReplacementEmailContent": {"ReplacementTemplate": {
            "ReplacementTemplateData": json.dumps(message.template_data)}},
        "ReplacementHeaders": [{"Name": name, "Value": value} for name, value in own.items()],
    }
    tags = ses_tags(message.tags)
    if tags:
        entry["ReplacementTags"] = tags
    return entry


def _bulk_result(entry: dict[str, object]) -> str | TransportError:
    status = str(entry.get("Status") or "")
    if status == "SUCCESS" and entry.get("MessageId"):
        return str(entry["MessageId"])
    code = _BULK_CODES.get(status, status or "no status")
    line = f"SES {code}: {_one_line(str(entry.get('Error') or status))}"
    error: TransportError
    if status in _BULK_THROTTLED:
        error = Throttled(line)
    elif status in _BULK_QUOTA:
        error = QuotaExhausted(line)
    elif status in _BULK_ACCOUNT:
        error = AccountError(line)
    elif status in _BULK_REJECTED:
        error = Rejected(line)
    else:  # TRANSIENT_FAILURE, FAILED, SUCCESS without an id: SES did not take it
        error = TemporaryFailure(line)
    error.ses_code = code
    return error


def _no_bulk(error: TransportError) -> bool:
    """The account or endpoint has no SendBulkEmail (not: a named resource is missing)."""
    code = getattr(error, "ses_code", "")
    return code in UNKNOWN_OPERATION or code == "404"


def _from_address(sender: str) -> str:
    name, address = parseaddr(sender)
    return formataddr((name, address), charset="utf-8") if address else sender


def ses_tags(tags: dict[str, str]) -> list[_NameValue]:
    """EmailTags from message tags, with characters SES refuses replaced by ``_``."""
    result = []
    for name, value in tags.items():
        clean_name = _TAG_FORBIDDEN.sub("_", str(name))[:_TAG_MAX]
        clean_value = _TAG_FORBIDDEN.sub("_", str(value))[:_TAG_MAX]
        if clean_name and clean_value:
            result.append({"Name": clean_name, "Value": clean_value})
    return result


def _bare_address(sender: str) -> str:
    return parseaddr(sender)[1] or sender


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
