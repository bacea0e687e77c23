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

import re
from email.utils import parseaddr

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

from mailer.domain import OutgoingEmail, SendQuota
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
_TAG_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")
_TAG_MAX = 256


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
    ) -> None:
        self.sender = sender
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
        request = {
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

    def close(self) -> None:
        self._client.close()

    # -- errors --------------------------------------------------------------------------------

    def _call(self, operation, sender: str | None = None, **kwargs):
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


def ses_tags(tags: dict[str, str]) -> list[dict[str, str]]:
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
