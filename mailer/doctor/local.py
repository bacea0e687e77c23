"""The doctor's checks that need no AWS: mailer's own settings."""

from __future__ import annotations

from email.utils import parseaddr

from mailer.config import GENERATE_HINT, MIN_SECRET_KEY_LENGTH, Settings
from mailer.doctor.checks import Check
from mailer.wire import WEBHOOK_PATH


def sender_address(settings: Settings) -> str:
    return parseaddr(settings.from_)[1]


def webhook_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + WEBHOOK_PATH


def check_secret(settings: Settings) -> Check:
    if settings.secret_is_insecure:
        return Check("web app secret", "FAIL",
                     f"MAILER_SECRET_KEY is the example or development key (or shorter than "
                     f"{MIN_SECRET_KEY_LENGTH} characters, or too plain): anyone could forge "
                     f"unsubscribe links. Set a long random one: {GENERATE_HINT}")
    return Check("web app secret", "ok", "MAILER_SECRET_KEY is set and not the example one")


def check_admin(settings: Settings) -> Check:
    problems = settings.admin_credential_problems()
    if problems:
        return Check("operator console", "FAIL",
                     f"{'; '.join(problems)}: /admin refuses it rather than let it be guessed. "
                     f"Set a long random one: {GENERATE_HINT}")
    if settings.admin_basic_usable or settings.admin_token_usable:
        return Check("operator console", "ok", "/admin has a strong password or token")
    return Check("operator console", "ok", "/admin is off (no MAILER_ADMIN_PASSWORD or "
                                           "MAILER_ADMIN_TOKEN set)")


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
