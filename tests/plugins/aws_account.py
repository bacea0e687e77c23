"""The `aws` fixture: a complete SES + SNS set-up on moto_server, as an operator would make it,
and BREAKAGES, the ways of breaking it that `mailer doctor` must name (shared by the doctor tests)."""

from __future__ import annotations

import boto3
import pytest


BASE_URL = "https://news.example.org"
HOOK = f"{BASE_URL}/webhooks/ses"
CONFIG_SET = "twir"


class Aws:
    """boto3 clients on the moto_server, and the complete set-up an operator would make."""

    def __init__(self, endpoint_url: str) -> None:
        def client(service: str):
            return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint_url,
                                aws_access_key_id="testing", aws_secret_access_key="testing")

        self.sesv2, self.ses, self.sns = client("sesv2"), client("ses"), client("sns")
        self.topic = ""
        self.subscription = ""

    def add_configuration_set(self, name: str, events: list[str]) -> None:
        self.sesv2.create_configuration_set(ConfigurationSetName=name)
        if events:
            self.add_destination(name, events)

    def add_destination(self, config_set: str, events: list[str]) -> None:
        self.ses.create_configuration_set_event_destination(
            ConfigurationSetName=config_set,
            EventDestination={"Name": f"{config_set}-to-sns", "Enabled": True, "MatchingEventTypes": events,
                              "SNSDestination": {"TopicARN": self.topic}})

    def set_up_everything(self) -> None:
        self.sesv2.create_email_identity(EmailIdentity="example.org")
        self.topic = self.sns.create_topic(Name="ses-events")["TopicArn"]
        self.add_configuration_set(CONFIG_SET, ["bounce", "complaint", "delivery", "send"])
        self.subscription = self.sns.subscribe(TopicArn=self.topic, Protocol="https",
                                               Endpoint=HOOK, ReturnSubscriptionArn=True
                                               )["SubscriptionArn"]


@pytest.fixture
def aws(moto_ses, mailer_env, monkeypatch) -> Aws:
    from mailer.config import get_settings

    aws = Aws(moto_ses.endpoint_url)
    aws.set_up_everything()
    env = {**moto_ses.env, "MAILER_FROM": "This Week in Rust <newsletter@example.org>",
           "MAILER_BASE_URL": BASE_URL, "MAILER_SES_CONFIGURATION_SET": CONFIG_SET,
           "MAILER_SNS_TOPIC_ARNS": aws.topic}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return aws


BREAKAGES = {
    "no identity": (
        lambda aws: aws.sesv2.delete_email_identity(EmailIdentity="example.org"), {},
        "sender identity", "neither newsletter@example.org nor example.org is an SES identity"),
    "address only, no DKIM": (
        lambda aws: (aws.sesv2.delete_email_identity(EmailIdentity="example.org"),
                     aws.sesv2.create_email_identity(EmailIdentity="newsletter@example.org")),
        {}, "DKIM", "DKIM is not set up for example.org"),
    "configuration set missing": (
        lambda aws: None, {"MAILER_SES_CONFIGURATION_SET": "typo"},
        "configuration set", "configuration set 'typo' (MAILER_SES_CONFIGURATION_SET) does not "
                             "exist"),
    "configuration set not configured": (
        lambda aws: None, {"MAILER_SES_CONFIGURATION_SET": ""},
        "configuration set", "MAILER_SES_CONFIGURATION_SET is not set"),
    "no event destination": (
        lambda aws: aws.add_configuration_set("bare", []),
        {"MAILER_SES_CONFIGURATION_SET": "bare"},
        "event destination", "'bare' has no enabled event destination to SNS"),
    "send events not published": (  # issue 21: rows whose answer was lost settle from them
        lambda aws: aws.add_configuration_set("nosend", ["bounce", "complaint", "delivery"]),
        {"MAILER_SES_CONFIGURATION_SET": "nosend"},
        "event destination", "does not publish Send events"),
    "deliveries not published": (
        lambda aws: aws.add_configuration_set("partial", ["bounce", "complaint", "send"]),
        {"MAILER_SES_CONFIGURATION_SET": "partial"},
        "event destination", "does not publish Delivery events"),
    "topic deleted": (
        lambda aws: aws.sns.delete_topic(TopicArn=aws.topic), {},
        "SNS topic", "does not exist"),
    "not subscribed": (
        lambda aws: aws.sns.unsubscribe(SubscriptionArn=aws.subscription), {},
        "web hook subscription", f"has no HTTPS subscription to {HOOK}"),
    "subscribed over http": (
        lambda aws: (aws.sns.unsubscribe(SubscriptionArn=aws.subscription),
                     aws.sns.subscribe(TopicArn=aws.topic, Protocol="http",
                                       Endpoint="http://news.example.org/webhooks/ses")), {},
        "web hook subscription", "has no HTTPS subscription"),
    "raw delivery on": (
        lambda aws: aws.sns.set_subscription_attributes(
            SubscriptionArn=aws.subscription, AttributeName="RawMessageDelivery",
            AttributeValue="true"), {},
        "web hook subscription", "raw message delivery turned on: turn it off"),
    "topic not allowed": (
        lambda aws: None, {"MAILER_SNS_TOPIC_ARNS": "arn:aws:sns:us-east-1:123456789012:other"},
        "topic allow-list", "is not on MAILER_SNS_TOPIC_ARNS"),
    "example secret": (
        lambda aws: None, {"MAILER_SECRET_KEY": "change-me-to-a-long-random-string"},
        "web app secret", "is the example or development key"),
    "example admin password": (
        lambda aws: None, {"MAILER_ADMIN_USER": "editor", "MAILER_ADMIN_PASSWORD": "change-me-too"},
        "operator console", "MAILER_ADMIN_PASSWORD is an example value"),
    "short admin token": (
        lambda aws: None, {"MAILER_ADMIN_TOKEN": "0123456789abcdef"},
        "operator console", "MAILER_ADMIN_TOKEN is shorter than 32 characters"),
    "plain http base URL": (
        lambda aws: None, {"MAILER_BASE_URL": "http://news.example.org"},
        "web hook URL", "is not https"),
}
