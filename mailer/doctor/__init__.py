"""`mailer doctor`: checks that the SES side is ready for a send, one plain-words line per check.

Each check returns ``ok``, ``warn`` or ``FAIL`` and says what is missing. They read only: nothing
in the AWS account is changed. SES and SNS are reached at MAILER_SES_ENDPOINT_URL when set (a
local moto_server serves both on one port), else at AWS in MAILER_SES_REGION.

``local`` checks mailer's own settings, ``account`` the SES account and sender (through the SES
transport's own reads, the ones its preflight makes), ``event_path`` the way SES events reach the
web hook, and ``live`` (`mailer doctor --live`) sends to SES's mailbox simulator and waits.
"""

from __future__ import annotations

from collections.abc import Callable

from mailer.config import Settings
from mailer.doctor.account import (
    check_access,
    check_account,
    check_configuration_set,
    check_dkim,
    check_identity,
)
from mailer.doctor.checks import Check, guarded
from mailer.doctor.event_path import (
    Findings,
    check_event_destination,
    check_subscriptions,
    check_topic_allowed,
    check_topics,
)
from mailer.doctor.local import check_admin, check_secret, check_transport, check_webhook_url
from mailer.transports.ses_reads import AwsClients, make_clients

__all__ = ["Check", "run_checks"]


def run_checks(settings: Settings, clients: AwsClients | None = None) -> list[Check]:
    """Every check, in the order an operator would fix them."""
    checks = [check_secret(settings), check_admin(settings), check_transport(settings),
              check_webhook_url(settings)]
    clients = clients or make_clients(settings)
    access = guarded("AWS access", lambda: check_access(clients))
    checks += access
    if access[0].status == "FAIL":
        return checks  # every other answer would be the same refusal
    found = Findings()
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
        checks += guarded(name, step)
    return checks
