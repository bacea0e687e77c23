"""The operator pages: delivery stats per issue, one issue's send over time, JSON for scripts.

Behind HTTP basic auth (MAILER_ADMIN_USER + MAILER_ADMIN_PASSWORD) or a bearer token
(MAILER_ADMIN_TOKEN). A credential that is an example value or too weak to resist guessing
(mailer.config says which) switches its way in off; with no way in left the pages answer 403
with the reason, never open. Credentials are compared in constant time, and failed attempts are
rate limited per client so a password cannot be guessed at network speed.

The pages are in ``mailer.web.console``; this module only decides who may see them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math

from fastapi import APIRouter, HTTPException, Request

from mailer.config import Settings
from mailer.web.limiter import FailedLoginGuard, SlidingWindowLimiter
from mailer.web.security import client_ip, rate_limit_key

router = APIRouter()

REALM = 'Basic realm="mailer operators", charset="UTF-8"'
FAILED_LOGINS_PER_MINUTE = 10


# -- authentication ---------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _same(given: str, expected: str) -> bool:
    # hash first so the comparison takes the same time whatever the lengths
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode()).digest(), digest(expected.encode()).digest())


def _basic_credentials(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _credentials_valid(settings: Settings, authorization: str) -> bool:
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and settings.admin_token_usable:
        return _same(value, settings.admin_token or "")
    if scheme.lower() == "basic" and settings.admin_basic_usable:
        credentials = _basic_credentials(value)
        if credentials is None:
            return False
        user_ok = _same(credentials[0], settings.admin_user or "")
        password_ok = _same(credentials[1], settings.admin_password or "")
        return user_ok & password_ok  # both compared, always
    return False


def _failed_logins(request: Request) -> FailedLoginGuard:
    state = request.app.state
    if getattr(state, "admin_failed_logins", None) is None:
        settings = _settings(request)
        state.admin_failed_logins = FailedLoginGuard(
            per_network=SlidingWindowLimiter(FAILED_LOGINS_PER_MINUTE, window=60.0),
            overall=SlidingWindowLimiter(settings.admin_failed_logins_global, window=3600.0))
    return state.admin_failed_logins


def _client_key(request: Request) -> str:
    # a whole IPv6 /64 is one client, as for the subscribe form
    return rate_limit_key(client_ip(request, getattr(request.app.state, "trusted_proxies", ())))


def _switched_off(settings: Settings) -> str:
    problems = settings.admin_credential_problems()
    if problems:  # weak or example: refused rather than left guessable (issue 19)
        return (f"The operator pages are switched off: {'; '.join(problems)}. Set a long random "
                "one; `mailer doctor` checks it.")
    return ("The operator pages are switched off: set MAILER_ADMIN_USER and "
            "MAILER_ADMIN_PASSWORD, or MAILER_ADMIN_TOKEN.")


def require_operator(request: Request) -> None:
    """Let an operator through, or answer 401 (ask for credentials) / 403 (pages switched off)."""
    settings = _settings(request)
    if not (settings.admin_basic_usable or settings.admin_token_usable):
        raise HTTPException(403, _switched_off(settings))
    authorization = request.headers.get("authorization", "")
    if authorization:
        failed, client = _failed_logins(request), _client_key(request)
        retry_after = failed.retry_after(client)
        if retry_after is not None:
            raise HTTPException(429, "Too many failed log-ins. Wait a minute and try again.",
                                headers={"Retry-After": str(math.ceil(retry_after))})
        if _credentials_valid(settings, authorization):
            return
        failed.record_failure(client)
    raise HTTPException(401, "Log in as an operator to see this page.",
                        headers={"WWW-Authenticate": REALM})


# The pages themselves live in mailer.web.console (overview, issues, readers, events), each
# behind require_operator above.
