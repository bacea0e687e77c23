"""Read-only SES and SNS calls, written once: the account, the sender identity and the
configuration set that both ``SesTransport.preflight()`` and ``mailer doctor`` read, and the event
set-up (DKIM, event destinations, SNS topics and subscriptions) that only the doctor reads.

Nothing here changes the AWS account. The reads raise botocore's own errors and the caller
interprets them: preflight maps them onto mailer's error tree, the doctor into plain-words checks.
Event destinations and DKIM are read through the classic SES API (``ses``): it sees the same
configuration sets and identities as SES v2, and local endpoints implement it fully.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mailer.config import Settings
from mailer.domain import SendQuota

# An endpoint that does not know the operation (moto_server has no GetAccount).
UNKNOWN_OPERATION = {"404", "UnknownOperationException", "UnknownOperation"}
_NOT_FOUND = {"NotFoundException", "NotFound", "ConfigurationSetDoesNotExist"}
# AWS refused who is asking: unknown, expired or unsigned credentials, or no permission.
REFUSED_CREDENTIALS = {
    "AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
    "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidSignatureException",
    "MissingAuthenticationTokenException", "ExpiredTokenException", "ExpiredToken",
}


# -- clients ----------------------------------------------------------------------------------


def client_config(*, attempts: int, connect_timeout: float, read_timeout: float,
                  max_connections: int = 10) -> Config:
    """botocore's settings for one client; ``attempts`` counts the first try (1: no retries)."""
    return Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                  max_pool_connections=max_connections, connect_timeout=connect_timeout,
                  read_timeout=read_timeout)


def aws_client(session: boto3.session.Session, service: str, *, region: str,
               endpoint_url: str | None, config: Config) -> Any:
    """A client at ``endpoint_url`` when set (a local moto_server serves SES and SNS on one
    port), else at AWS in ``region``."""
    return session.client(service, region_name=region, endpoint_url=endpoint_url or None,
                          config=config)


@dataclass
class AwsClients:
    """The doctor's clients: a couple of quick retries, short timeouts, reads only."""

    sesv2: Any
    ses: Any
    sns: Any
    region: str


def make_clients(settings: Settings) -> AwsClients:
    config = client_config(attempts=2, connect_timeout=5, read_timeout=15)
    session = boto3.session.Session()
    sesv2, ses, sns = (aws_client(session, service, region=settings.ses_region,
                                  endpoint_url=settings.ses_endpoint_url, config=config)
                       for service in ("sesv2", "ses", "sns"))
    return AwsClients(sesv2, ses, sns, settings.ses_region)


# -- what an error answer says ----------------------------------------------------------------


def error_code(error: ClientError) -> str:
    """AWS's error code, or the HTTP status when the answer carries none."""
    code = str(error.response.get("Error", {}).get("Code") or "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return code or str(int(status))


def is_not_found(error: ClientError) -> bool:
    return error_code(error) in _NOT_FOUND


def is_refused_credentials(error: ClientError) -> bool:
    return error_code(error) in REFUSED_CREDENTIALS


def reason(error: Exception) -> str:
    """One short line for an operator: the code and message, or the exception's first line."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        message = details.get("Message", "") or ""
        if message.lstrip().startswith("<"):  # an HTML error page from a local endpoint
            message = ""
        return f"{details.get('Code', '')} {message}".strip() or "an error"
    return str(error).splitlines()[0]


# -- the account, the sender identity, the configuration set (preflight and doctor) ----------


@dataclass(frozen=True)
class SesAccount:
    """What SES v2's GetAccount says about the account's standing and quota."""

    sending_enabled: bool | None
    enforcement_status: str | None
    production_access: bool | None
    max_send_rate: float | None
    max_24h: float | None  # negative: unlimited
    sent_last_24h: float | None

    @property
    def paused(self) -> bool:
        return self.sending_enabled is False

    @property
    def shut_down(self) -> bool:
        return self.enforcement_status == "SHUTDOWN"

    def send_quota(self) -> SendQuota:
        return SendQuota(max_send_rate=self.max_send_rate, max_24h=self.max_24h,
                         sent_last_24h=self.sent_last_24h or 0.0,
                         sending_enabled=self.sending_enabled is not False,  # unknown is not refused
                         enforcement_status=self.enforcement_status)


def read_account(sesv2: Any) -> SesAccount | None:
    """The account's standing; None from an endpoint without GetAccount."""
    try:
        account = sesv2.get_account()
    except ClientError as error:
        if error_code(error) in UNKNOWN_OPERATION:
            return None
        raise
    limits = account.get("SendQuota") or {}
    return SesAccount(sending_enabled=account.get("SendingEnabled", True),
                      enforcement_status=account.get("EnforcementStatus"),
                      production_access=account.get("ProductionAccessEnabled"),
                      max_send_rate=limits.get("MaxSendRate"), max_24h=limits.get("Max24HourSend"),
                      sent_last_24h=limits.get("SentLast24Hours"))


def identity_state(sesv2: Any, identity: str) -> str | None:
    """``verified``, ``pending`` (or another status in lower case), or None when unknown to SES."""
    try:
        found = sesv2.get_email_identity(EmailIdentity=identity)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    if found.get("VerifiedForSendingStatus") or found.get("VerificationStatus") == "SUCCESS":
        return "verified"
    return str(found.get("VerificationStatus") or "not verified").lower()


def configuration_set_exists(sesv2: Any, name: str) -> bool:
    try:
        sesv2.get_configuration_set(ConfigurationSetName=name)
    except ClientError as error:
        if is_not_found(error):
            return False
        raise
    return True


# -- the rest of the set-up (doctor only) -----------------------------------------------------


def list_one_identity(clients: AwsClients) -> None:
    """The cheapest signed SES call: it proves the credentials and the endpoint."""
    clients.sesv2.list_email_identities(PageSize=1)


def classic_send_quota(clients: AwsClients) -> dict:
    return clients.ses.get_send_quota()


def dkim_attributes(clients: AwsClients, domain: str) -> dict:
    found = clients.ses.get_identity_dkim_attributes(Identities=[domain])["DkimAttributes"]
    return found.get(domain) or {}


def sns_destinations(clients: AwsClients, name: str) -> list[dict]:
    """The configuration set's enabled event destinations that publish to an SNS topic."""
    described = clients.ses.describe_configuration_set(
        ConfigurationSetName=name, ConfigurationSetAttributeNames=["eventDestinations"])
    return [d for d in described.get("EventDestinations", [])
            if d.get("Enabled") and d.get("SNSDestination", {}).get("TopicARN")]


def topic_exists(clients: AwsClients, arn: str) -> bool:
    try:
        clients.sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        if is_not_found(error):
            return False
        raise
    return True


def subscriptions(clients: AwsClients, arn: str) -> Iterator[dict]:
    paginator = clients.sns.get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=arn):
        yield from page.get("Subscriptions", [])


def subscription_attributes(clients: AwsClients, arn: str) -> dict:
    return clients.sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
