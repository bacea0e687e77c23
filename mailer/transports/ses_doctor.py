"""`mailer doctor`'s checks of the SES side, before a send: one plain-words line per check.

Each check returns ``ok``, ``warn`` or ``FAIL`` and says what is missing. They read only: nothing
in the AWS account is changed. SES and SNS are reached at MAILER_SES_ENDPOINT_URL when set (a
local moto_server serves both on one port), else at AWS in MAILER_SES_REGION.

Event destinations and DKIM are read through the classic SES API (``ses``): it sees the same
configuration sets and identities as SES v2, and local endpoints implement it fully.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mailer.config import Settings
from mailer.wire import WEBHOOK_PATH

Status = Literal["ok", "warn", "FAIL"]
NEEDED_EVENTS = ("bounce", "complaint", "delivery")
_AUTH_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch",
               "AccessDeniedException", "AccessDenied", "ExpiredTokenException"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str


@dataclass
class AwsClients:
    sesv2: Any
    ses: Any
    sns: Any
    region: str


@dataclass
class _Findings:
    """What earlier checks learnt that later ones need."""

    topics: list[str] = field(default_factory=list)


def make_clients(settings: Settings) -> AwsClients:
    config = Config(retries={"total_max_attempts": 2, "mode": "standard"},
                    connect_timeout=5, read_timeout=15)
    session = boto3.session.Session()

    def client(service: str):
        return session.client(service, region_name=settings.ses_region,
                              endpoint_url=settings.ses_endpoint_url or None, config=config)

    return AwsClients(client("sesv2"), client("ses"), client("sns"), settings.ses_region)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _not_found(error: ClientError) -> bool:
    return _code(error) in {"NotFoundException", "NotFound", "ConfigurationSetDoesNotExist"}


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message", "") or ""
        if message.lstrip().startswith("<"):  # an HTML error page from a local endpoint
            message = ""
        return f"{_code(error)} {message}".strip() or "an error"
    return str(error).splitlines()[0]


def sender_address(settings: Settings) -> str:
    return parseaddr(settings.from_)[1]


def webhook_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + WEBHOOK_PATH


# -- checks that need no AWS ------------------------------------------------------------------


def check_secret(settings: Settings) -> Check:
    if settings.secret_is_insecure:
        return Check("web app secret", "FAIL",
                     "MAILER_SECRET_KEY is the example or development key (or shorter than 16 "
                     "characters): anyone could forge unsubscribe links. Set a long random one.")
    return Check("web app secret", "ok", "MAILER_SECRET_KEY is set and not the example one")


def check_transport(settings: Settings) -> Check:
    if settings.transport != "ses":
        return Check("transport", "warn", f"MAILER_TRANSPORT is {settings.transport!r}: "
                                          "a send will not go through SES")
    return Check("transport", "ok", "MAILER_TRANSPORT is ses")


def check_webhook_url(settings: Settings) -> Check:
    url = webhook_url(settings)
    if not url.startswith("https://"):
        return Check("web hook URL", "FAIL", f"{url} is not https: MAILER_BASE_URL must be the "
                                             "public https address SNS can reach")
    return Check("web hook URL", "ok", f"SNS should deliver to {url}")


# -- SES --------------------------------------------------------------------------------------


def check_access(clients: AwsClients) -> Check:
    try:
        clients.sesv2.list_email_identities(PageSize=1)
    except NoCredentialsError:
        return Check("AWS access", "FAIL", "no AWS credentials found (AWS_ACCESS_KEY_ID / "
                                           "AWS_PROFILE / an instance role)")
    except ClientError as error:
        if _code(error) in _AUTH_CODES:
            return Check("AWS access", "FAIL", f"AWS refused the credentials: {_reason(error)}")
        raise
    except BotoCoreError as error:
        return Check("AWS access", "FAIL", f"cannot reach SES in {clients.region}: "
                                           f"{_reason(error)}")
    return Check("AWS access", "ok", f"SES answers in {clients.region}")


def _identity_state(clients: AwsClients, identity: str) -> str | None:
    """``verified``, ``pending`` (or another status in lower case), or None when unknown to SES."""
    try:
        found = clients.sesv2.get_email_identity(EmailIdentity=identity)
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    if found.get("VerifiedForSendingStatus") or found.get("VerificationStatus") == "SUCCESS":
        return "verified"
    return str(found.get("VerificationStatus") or "not verified").lower()


def check_identity(settings: Settings, clients: AwsClients) -> Check:
    address = sender_address(settings)
    if "@" not in address:
        return Check("sender identity", "FAIL", f"MAILER_FROM {settings.from_!r} has no address")
    domain = address.rpartition("@")[2]
    states = {identity: _identity_state(clients, identity) for identity in (address, domain)}
    for identity, state in states.items():
        if state == "verified":
            return Check("sender identity", "ok", f"{identity} is verified for sending")
    waiting = [f"{identity} is {state}" for identity, state in states.items() if state]
    if waiting:
        return Check("sender identity", "FAIL", "; ".join(waiting) + ": finish its verification "
                                                "(DNS records for a domain, the link for an address)")
    return Check("sender identity", "FAIL",
                 f"neither {address} nor {domain} is an SES identity in {clients.region}: "
                 "verify the domain in SES (or change MAILER_FROM)")


def check_dkim(settings: Settings, clients: AwsClients) -> Check:
    domain = sender_address(settings).rpartition("@")[2]
    if not domain:
        return Check("DKIM", "FAIL", "MAILER_FROM has no domain to sign for")
    found = clients.ses.get_identity_dkim_attributes(Identities=[domain])["DkimAttributes"]
    attributes = found.get(domain) or {}
    status = str(attributes.get("DkimVerificationStatus") or "NotStarted")
    if attributes.get("DkimEnabled") and status == "Success":
        return Check("DKIM", "ok", f"mail from {domain} is DKIM-signed")
    if status == "Pending":
        return Check("DKIM", "warn", f"DKIM for {domain} is pending: publish the CNAME records "
                                     "SES gave you and wait for them to be seen")
    if attributes and not attributes.get("DkimEnabled") and status == "Success":
        return Check("DKIM", "FAIL", f"DKIM signing is turned off for {domain}: turn it on")
    return Check("DKIM", "FAIL", f"DKIM is not set up for {domain} (status {status}): Gmail and "
                                 "Yahoo refuse bulk mail without it. Set up Easy DKIM for the "
                                 "domain identity.")


def check_configuration_set(settings: Settings, clients: AwsClients) -> Check:
    name = settings.ses_configuration_set
    if not name:
        return Check("configuration set", "FAIL",
                     "MAILER_SES_CONFIGURATION_SET is not set: SES will not publish bounces, "
                     "complaints and deliveries for mailer to act on")
    try:
        clients.sesv2.get_configuration_set(ConfigurationSetName=name)
    except ClientError as error:
        if _not_found(error):
            return Check("configuration set", "FAIL", f"configuration set {name!r} "
                                                      f"(MAILER_SES_CONFIGURATION_SET) does not "
                                                      f"exist in {clients.region}")
        raise
    return Check("configuration set", "ok", f"configuration set {name!r} exists")


def _sns_destinations(clients: AwsClients, name: str) -> list[dict]:
    described = clients.ses.describe_configuration_set(
        ConfigurationSetName=name, ConfigurationSetAttributeNames=["eventDestinations"])
    return [d for d in described.get("EventDestinations", [])
            if d.get("Enabled") and d.get("SNSDestination", {}).get("TopicARN")]


def check_event_destination(settings: Settings, clients: AwsClients, found: _Findings) -> Check:
    name = settings.ses_configuration_set
    if not name:
        return Check("event destination", "FAIL", "no configuration set, so no event destination")
    try:
        destinations = _sns_destinations(clients, name)
    except ClientError as error:
        if _not_found(error):
            return Check("event destination", "FAIL", f"configuration set {name!r} is missing")
        raise
    if not destinations:
        return Check("event destination", "FAIL",
                     f"configuration set {name!r} has no enabled event destination to SNS: add "
                     "one for Bounce, Complaint and Delivery events")
    covered = {event.lower() for d in destinations for event in d.get("MatchingEventTypes", [])}
    found.topics = list(dict.fromkeys(d["SNSDestination"]["TopicARN"] for d in destinations))
    missing = [event.capitalize() for event in NEEDED_EVENTS if event not in covered]
    if missing:
        return Check("event destination", "FAIL",
                     f"the SNS event destination of {name!r} does not publish "
                     f"{', '.join(missing)} events: add them to its event types")
    return Check("event destination", "ok",
                 f"{name!r} publishes Bounce, Complaint and Delivery to {', '.join(found.topics)}")


# -- SNS --------------------------------------------------------------------------------------


def _topics_to_check(settings: Settings, found: _Findings) -> list[str]:
    return found.topics or list(settings.sns_topic_arns)


def check_topics(settings: Settings, clients: AwsClients, found: _Findings) -> Check:
    topics = _topics_to_check(settings, found)
    if not topics:
        return Check("SNS topic", "FAIL", "no SNS topic to check: neither an event destination "
                                          "nor MAILER_SNS_TOPIC_ARNS names one")
    missing = []
    for arn in topics:
        try:
            clients.sns.get_topic_attributes(TopicArn=arn)
        except ClientError as error:
            if not _not_found(error):
                raise
            missing.append(arn)
    if missing:
        return Check("SNS topic", "FAIL", f"SNS topic {', '.join(missing)} does not exist")
    return Check("SNS topic", "ok", f"{', '.join(topics)} exists")


def _subscriptions(clients: AwsClients, arn: str) -> Iterator[dict]:
    paginator = clients.sns.get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=arn):
        yield from page.get("Subscriptions", [])


def _subscription_problem(clients: AwsClients, subscription: dict) -> str | None:
    arn = subscription.get("SubscriptionArn", "")
    if arn == "PendingConfirmation":
        return "is waiting for confirmation"
    attributes = clients.sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    if attributes.get("PendingConfirmation") == "true":
        return "is waiting for confirmation"
    if attributes.get("RawMessageDelivery") == "true":
        return ("has raw message delivery turned on: turn it off, the web hook needs the "
                "signed SNS envelope")
    return None


def _check_topic_subscription(settings: Settings, clients: AwsClients, arn: str) -> Check:
    url = webhook_url(settings)
    matching = [s for s in _subscriptions(clients, arn)
                if s.get("Protocol") == "https" and s.get("Endpoint") == url]
    if not matching:
        return Check("web hook subscription", "FAIL",
                     f"topic {arn} has no HTTPS subscription to {url}: subscribe it (the web app "
                     "confirms it once the topic is on MAILER_SNS_TOPIC_ARNS)")
    problems = [p for p in (_subscription_problem(clients, s) for s in matching) if p]
    if len(problems) == len(matching):
        hint = ""
        if problems[0] == "is waiting for confirmation":
            hint = ": the web app must be reachable there with the topic on MAILER_SNS_TOPIC_ARNS"
        return Check("web hook subscription", "FAIL", f"the subscription of {url} to {arn} "
                                                      f"{problems[0]}{hint}")
    return Check("web hook subscription", "ok", f"{url} is subscribed to {arn}, confirmed, "
                                                "raw delivery off")


def check_subscriptions(settings: Settings, clients: AwsClients, found: _Findings) -> list[Check]:
    checks = []
    for arn in _topics_to_check(settings, found):
        try:
            checks.append(_check_topic_subscription(settings, clients, arn))
        except ClientError as error:
            if not _not_found(error):
                raise
            checks.append(Check("web hook subscription", "FAIL", f"topic {arn} does not exist"))
    return checks or [Check("web hook subscription", "FAIL", "no SNS topic to subscribe to")]


def check_topic_allowed(settings: Settings, found: _Findings) -> Check:
    allowed = set(settings.sns_topic_arns)
    topics = found.topics
    if not topics:
        if allowed:
            return Check("topic allow-list", "warn", "MAILER_SNS_TOPIC_ARNS is set, but no event "
                                                     "destination tells which topic SES uses")
        return Check("topic allow-list", "FAIL", "MAILER_SNS_TOPIC_ARNS is empty: the web hook "
                                                 "refuses every notification")
    missing = [arn for arn in topics if arn not in allowed]
    if missing:
        return Check("topic allow-list", "FAIL", f"{', '.join(missing)} is not on "
                                                 "MAILER_SNS_TOPIC_ARNS: the web hook will refuse "
                                                 "its messages")
    return Check("topic allow-list", "ok", "the event topic is on MAILER_SNS_TOPIC_ARNS")


# -- the account ------------------------------------------------------------------------------


def _fmt(number: float | None) -> str:
    if number is None:
        return "?"
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,.1f}"


def _quota_text(quota: dict) -> str:
    max_24h = quota.get("Max24HourSend")
    limit = "unlimited" if max_24h is not None and max_24h < 0 else f"{_fmt(max_24h)} per 24 h"
    return (f"quota {limit}, {_fmt(quota.get('MaxSendRate'))} per second, "
            f"{_fmt(quota.get('SentLast24Hours'))} sent in the last 24 h")


def check_account(clients: AwsClients) -> Check:
    try:
        account = clients.sesv2.get_account()
    except ClientError:
        return _quota_without_account(clients)
    quota = _quota_text(account.get("SendQuota") or {})
    enforcement = account.get("EnforcementStatus") or "unknown"
    if account.get("SendingEnabled") is False:
        return Check("account", "FAIL", f"sending is paused for this account; {quota}")
    if enforcement == "SHUTDOWN":
        return Check("account", "FAIL", "the account is shut down (EnforcementStatus SHUTDOWN)")
    if enforcement == "PROBATION":
        return Check("account", "warn", f"the account is on probation (review): bring bounce and "
                                        f"complaint rates down before sending; {quota}")
    if account.get("ProductionAccessEnabled") is False:
        return Check("account", "warn", f"the account is in the SES sandbox: only verified "
                                        f"recipients get mail; {quota}")
    return Check("account", "ok", f"enforcement status {enforcement}; {quota}")


def _quota_without_account(clients: AwsClients) -> Check:
    # Local endpoints (moto_server) have no GetAccount: say so rather than fail
    try:
        quota = _quota_text(clients.ses.get_send_quota())
    except (ClientError, BotoCoreError):
        quota = "quota unknown"
    return Check("account", "warn", f"enforcement status unknown (this endpoint has no "
                                    f"GetAccount); {quota}")


# -- all of it --------------------------------------------------------------------------------


def _guarded(name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; an unexpected AWS error becomes that check's FAIL, not a traceback."""
    try:
        result = check()
    except (ClientError, BotoCoreError) as error:
        return [Check(name, "FAIL", f"could not check: {_reason(error)}")]
    return result if isinstance(result, list) else [result]


def run_checks(settings: Settings, clients: AwsClients | None = None) -> list[Check]:
    """Every check, in the order an operator would fix them."""
    checks = [check_secret(settings), check_transport(settings), check_webhook_url(settings)]
    clients = clients or make_clients(settings)
    access = _guarded("AWS access", lambda: check_access(clients))
    checks += access
    if access[0].status == "FAIL":
        return checks  # every other answer would be the same refusal
    found = _Findings()
    steps: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("sender identity", lambda: check_identity(settings, clients)),
        ("DKIM", lambda: check_dkim(settings, clients)),
        ("configuration set", lambda: check_configuration_set(settings, clients)),
        ("event destination", lambda: check_event_destination(settings, clients, found)),
        ("SNS topic", lambda: check_topics(settings, clients, found)),
        ("web hook subscription", lambda: check_subscriptions(settings, clients, found)),
        ("topic allow-list", lambda: check_topic_allowed(settings, found)),
        ("account", lambda: check_account(clients)),
    ]
    for name, step in steps:
        checks += _guarded(name, step)
    return checks
