"""The doctor's checks of the path SES events take to mailer: the configuration set's SNS event
destination, the SNS topic, its subscription to the web hook, and the web hook's topic
allow-list."""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from mailer.config import Settings
from mailer.doctor.checks import Check
from mailer.doctor.local import webhook_url
from mailer.transports.ses_reads import (
    AwsClients,
    is_not_found,
    sns_destinations,
    subscription_attributes,
    subscriptions,
    topic_exists,
)

# Send events settle the rows whose SES answer was lost, and prove the event path works so the
# rest are re-sent (issue 21): without them, those readers stay `unknown`.
NEEDED_EVENTS = ("bounce", "complaint", "delivery", "send")
_WAITING = "is waiting for confirmation"


@dataclass
class Findings:
    """What earlier checks learnt that later ones need."""

    topics: list[str] = field(default_factory=list)


def check_event_destination(settings: Settings, clients: AwsClients, found: Findings) -> Check:
    name = settings.ses_configuration_set
    if not name:
        return Check("event destination", "FAIL", "no configuration set, so no event destination")
    try:
        destinations = sns_destinations(clients, name)
    except ClientError as error:
        if is_not_found(error):
            return Check("event destination", "FAIL", f"configuration set {name!r} is missing")
        raise
    if not destinations:
        return Check("event destination", "FAIL",
                     f"configuration set {name!r} has no enabled event destination to SNS: add "
                     "one for Bounce, Complaint, Delivery and Send events")
    covered = {event.lower() for d in destinations for event in d.get("MatchingEventTypes", [])}
    found.topics = list(dict.fromkeys(d["SNSDestination"]["TopicARN"] for d in destinations))
    missing = [event.capitalize() for event in NEEDED_EVENTS if event not in covered]
    if missing:
        return Check("event destination", "FAIL",
                     f"the SNS event destination of {name!r} does not publish "
                     f"{', '.join(missing)} events: add them to its event types"
                     + (" (without Send events, readers whose SES answer was lost stay "
                        "unknown)" if "Send" in missing else ""))
    return Check("event destination", "ok",
                 f"{name!r} publishes Bounce, Complaint, Delivery and Send to {', '.join(found.topics)}")


def _topics_to_check(settings: Settings, found: Findings) -> list[str]:
    return found.topics or list(settings.sns_topic_arns)


def check_topics(settings: Settings, clients: AwsClients, found: Findings) -> Check:
    topics = _topics_to_check(settings, found)
    if not topics:
        return Check("SNS topic", "FAIL", "no SNS topic to check: neither an event destination "
                                          "nor MAILER_SNS_TOPIC_ARNS names one")
    missing = [arn for arn in topics if not topic_exists(clients, arn)]
    if missing:
        return Check("SNS topic", "FAIL", f"SNS topic {', '.join(missing)} does not exist")
    return Check("SNS topic", "ok", f"{', '.join(topics)} exists")


def _subscription_problem(clients: AwsClients, subscription: dict) -> str | None:
    arn = subscription.get("SubscriptionArn", "")
    if arn == "PendingConfirmation":
        return _WAITING
    attributes = subscription_attributes(clients, arn)
    if attributes.get("PendingConfirmation") == "true":
        return _WAITING
    if attributes.get("RawMessageDelivery") == "true":
        return ("has raw message delivery turned on: turn it off, the web hook needs the "
                "signed SNS envelope")
    return None


def _check_topic_subscription(settings: Settings, clients: AwsClients, arn: str) -> Check:
    url = webhook_url(settings)
    matching = [s for s in subscriptions(clients, arn)
                if s.get("Protocol") == "https" and s.get("Endpoint") == url]
    if not matching:
        return Check("web hook subscription", "FAIL",
                     f"topic {arn} has no HTTPS subscription to {url}: subscribe it (the web app "
                     "confirms it once the topic is on MAILER_SNS_TOPIC_ARNS)")
    problems = [p for p in (_subscription_problem(clients, s) for s in matching) if p]
    if len(problems) == len(matching):
        hint = ""
        if problems[0] == _WAITING:
            hint = ": the web app must be reachable there with the topic on MAILER_SNS_TOPIC_ARNS"
        return Check("web hook subscription", "FAIL", f"the subscription of {url} to {arn} "
                                                      f"{problems[0]}{hint}")
    return Check("web hook subscription", "ok", f"{url} is subscribed to {arn}, confirmed, "
                                                "raw delivery off")


def check_subscriptions(settings: Settings, clients: AwsClients, found: Findings) -> list[Check]:
    checks = []
    for arn in _topics_to_check(settings, found):
        try:
            checks.append(_check_topic_subscription(settings, clients, arn))
        except ClientError as error:
            if not is_not_found(error):
                raise
            checks.append(Check("web hook subscription", "FAIL", f"topic {arn} does not exist"))
    return checks or [Check("web hook subscription", "FAIL", "no SNS topic to subscribe to")]


def check_topic_allowed(settings: Settings, found: Findings) -> Check:
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
