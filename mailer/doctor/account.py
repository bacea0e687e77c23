"""The doctor's checks of the SES account: access, sender identity and DKIM, the configuration
set, and the account's standing. The account, identity and configuration-set reads are the SES
transport's own (``mailer.transports.ses_reads``), the ones its preflight makes before a send;
here they become plain-words verdicts instead of errors."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mailer.config import Settings
from mailer.doctor.checks import Check
from mailer.doctor.local import sender_address
from mailer.transports.ses_reads import (
    AwsClients,
    classic_send_quota,
    configuration_set_exists,
    dkim_attributes,
    identity_state,
    is_refused_credentials,
    list_one_identity,
    read_account,
    reason,
)


def check_access(clients: AwsClients) -> Check:
    try:
        list_one_identity(clients)
    except NoCredentialsError:
        return Check("AWS access", "FAIL", "no AWS credentials found (AWS_ACCESS_KEY_ID / "
                                           "AWS_PROFILE / an instance role)")
    except ClientError as error:
        if is_refused_credentials(error):
            return Check("AWS access", "FAIL", f"AWS refused the credentials: {reason(error)}")
        raise
    except BotoCoreError as error:
        return Check("AWS access", "FAIL", f"cannot reach SES in {clients.region}: "
                                           f"{reason(error)}")
    return Check("AWS access", "ok", f"SES answers in {clients.region}")


def check_identity(settings: Settings, clients: AwsClients) -> Check:
    address = sender_address(settings)
    if "@" not in address:
        return Check("sender identity", "FAIL", f"MAILER_FROM {settings.from_!r} has no address")
    domain = address.rpartition("@")[2]
    states = {identity: identity_state(clients.sesv2, identity) for identity in (address, domain)}
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
    attributes = dkim_attributes(clients, domain)
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
    if not configuration_set_exists(clients.sesv2, name):
        return Check("configuration set", "FAIL", f"configuration set {name!r} "
                                                  f"(MAILER_SES_CONFIGURATION_SET) does not "
                                                  f"exist in {clients.region}")
    return Check("configuration set", "ok", f"configuration set {name!r} exists")


# -- the account's standing -------------------------------------------------------------------


def _fmt(number: float | None) -> str:
    if number is None:
        return "?"
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,.1f}"


def _quota_text(max_24h: float | None, per_second: float | None, sent: float | None) -> str:
    limit = "unlimited" if max_24h is not None and max_24h < 0 else f"{_fmt(max_24h)} per 24 h"
    return f"quota {limit}, {_fmt(per_second)} per second, {_fmt(sent)} sent in the last 24 h"


def check_account(clients: AwsClients) -> Check:
    try:
        account = read_account(clients.sesv2)
    except ClientError:
        account = None
    if account is None:
        return _quota_without_account(clients)
    quota = _quota_text(account.max_24h, account.max_send_rate, account.sent_last_24h)
    enforcement = account.enforcement_status or "unknown"
    if account.paused:
        return Check("account", "FAIL", f"sending is paused for this account; {quota}")
    if account.shut_down:
        return Check("account", "FAIL", "the account is shut down (EnforcementStatus SHUTDOWN)")
    if enforcement == "PROBATION":
        return Check("account", "warn", f"the account is on probation (review): bring bounce and "
                                        f"complaint rates down before sending; {quota}")
    if account.production_access is False:
        return Check("account", "warn", f"the account is in the SES sandbox: only verified "
                                        f"recipients get mail; {quota}")
    return Check("account", "ok", f"enforcement status {enforcement}; {quota}")


def _quota_without_account(clients: AwsClients) -> Check:
    # Local endpoints (moto_server) have no GetAccount: say so rather than fail
    try:
        found = classic_send_quota(clients)
        quota = _quota_text(found.get("Max24HourSend"), found.get("MaxSendRate"),
                            found.get("SentLast24Hours"))
    except (ClientError, BotoCoreError):
        quota = "quota unknown"
    return Check("account", "warn", f"enforcement status unknown (this endpoint has no "
                                    f"GetAccount); {quota}")
