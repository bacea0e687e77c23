"""``POST /webhooks/ses``: SES events arriving through an SNS HTTP(S) subscription.

Nothing is acted on before the message passed every check in :mod:`mailer.events.sns` (topic on
``MAILER_SNS_TOPIC_ARNS``, certificate URL on an SNS host, Timestamp within SNS's retry span,
signature v1/v2). Refusals are 4xx, so SNS does not retry them: a signed notification mailer
cannot read (:class:`~mailer.events.ses.MalformedEvent`) is a 400 too, logged, since SNS would
only send the same bytes again. An event *type* mailer does not know is no such refusal: it is
stored as kind ``other`` and answered 200, since SNS drops what is refused. Only a database we cannot reach answers 503, which SNS retries.

The signing certificate comes from ``app.state.sns_cert_fetcher`` (the app factory installs the
https fetcher with its cache; tests install one serving their own certificate), and the
subscription confirmation visit from ``app.state.sns_subscription_confirmer`` when set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mailer.errors import StoreError, WebhookRejected
from mailer.events import sns
from mailer.events.apply import ingest_sns_message
from mailer.web.client_body import BodyDeadlineExceeded
from mailer.store.db import get_engine
from mailer.wire import SNS_TYPE_HEADER, WEBHOOK_PATH

log = logging.getLogger("mailer.webhook")
router = APIRouter()

# The web hook's one body cap: the app's size middleware lets this path through, so a refusal is
# this route's logged JSON answer like every other. SES caps mail.headers at 10 KB; real
# notifications are far smaller.
MAX_BODY_BYTES = 256 * 1024
MAX_CERT_BYTES = 64 * 1024
SNS_FETCH_TIMEOUT = 3.0  # seconds; SNS itself waits 15 s for our answer


class SnsUnreachable(Exception):
    """The certificate could not be fetched for a network reason: SNS should retry."""


def fetch_https(url: str, *, limit: int = MAX_CERT_BYTES) -> bytes:
    """GET an SNS URL (already checked by the caller), no redirects, bounded size and time."""
    try:
        with httpx.stream("GET", url, timeout=SNS_FETCH_TIMEOUT, follow_redirects=False) as reply:
            if reply.status_code >= 500:  # SNS's host failing for a moment: let SNS retry
                raise SnsUnreachable(f"SNS answered {reply.status_code} for {url[:200]}")
            if reply.status_code != 200:
                raise WebhookRejected(f"SNS answered {reply.status_code} for {url[:200]}", 403)
            body = b""
            for chunk in reply.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise WebhookRejected("the SNS answer is too large", 403)
            return body
    except httpx.TransportError as error:
        raise SnsUnreachable(f"cannot reach {url[:200]}: {error}") from None


def production_cert_fetcher() -> sns.CertFetcher:
    """The fetcher the app uses: https from SNS hosts only, each certificate fetched once."""
    return sns.CertificateCache(fetch_https)


def confirm_subscription_https(url: str) -> None:
    fetch_https(url)


def _cert_fetcher(request: Request) -> sns.CertFetcher:
    fetcher = getattr(request.app.state, "sns_cert_fetcher", None)
    if fetcher is None:  # an app built without the factory's line: still the real checks
        fetcher = request.app.state.sns_cert_fetcher = production_cert_fetcher()
    return fetcher


def _confirmer(request: Request) -> Callable[[str], None]:
    return getattr(request.app.state, "sns_subscription_confirmer", None) or (
        confirm_subscription_https
    )


async def read_capped_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WebhookRejected(f"the body is larger than {limit // 1024} KB", 413)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise WebhookRejected(f"the body is larger than {limit // 1024} KB", 413)
    except BodyDeadlineExceeded as error:  # MAILER_HTTP_BODY_TIMEOUT: answered in this route's JSON
        raise WebhookRejected(str(error.detail), 408) from None
    return bytes(body)


def check_type_header(envelope: sns.SnsEnvelope, header: str | None) -> None:
    if header and header != envelope.type:
        raise WebhookRejected(
            f"{SNS_TYPE_HEADER} {header[:40]!r} does not match the body's Type", 400
        )


def handle_sns_body(request: Request, body: bytes) -> dict:
    """Parse, verify and act on one SNS message. Blocking: runs in the thread pool."""
    settings = request.app.state.settings
    envelope = sns.parse_envelope(body)
    check_type_header(envelope, request.headers.get(SNS_TYPE_HEADER))
    sns.verify_envelope(envelope, allowed_topics=settings.sns_topic_arns,
                        fetch_cert=_cert_fetcher(request))
    if envelope.type == sns.SUBSCRIPTION_CONFIRMATION:
        sns.check_subscribe_url(envelope)
    result = ingest_sns_message(get_engine(settings.database_url), envelope, settings)
    if result.replayed_messages:
        log.info("SNS message %s seen before: ignored", envelope.message_id)
        return {"status": "duplicate", "message_id": envelope.message_id}
    if envelope.type == sns.UNSUBSCRIBE_CONFIRMATION:
        log.warning("SNS unsubscribed this web hook from %s", envelope.topic_arn)
    return {"status": "ok", "type": envelope.type, "events": dict(result.recorded),
            "duplicates": result.duplicates}


def confirm_later(confirmer: Callable[[str], None], url: str, topic_arn: str) -> None:
    try:
        confirmer(url)
        log.info("confirmed the SNS subscription to %s", topic_arn)
    except Exception as error:
        log.error("could not confirm the SNS subscription to %s: %s", topic_arn, error)


def rejected(error: WebhookRejected, request: Request) -> JSONResponse:
    client = request.client.host if request.client else "?"
    log.warning("SNS web hook refused a request from %s: %s", client, error)
    headers = {"Connection": "close"} if error.status_code == 408 else None
    return JSONResponse({"error": str(error)}, status_code=error.status_code, headers=headers)


@router.post(WEBHOOK_PATH)
async def ses_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
    try:
        body = await read_capped_body(request)
        outcome = await run_in_threadpool(handle_sns_body, request, body)
    except WebhookRejected as error:
        return rejected(error, request)
    except (StoreError, SnsUnreachable) as error:
        log.error("SNS web hook cannot process a message now (SNS will retry): %s", error)
        return JSONResponse({"error": "temporarily unavailable, retry later"}, status_code=503)
    if outcome.get("type") == sns.SUBSCRIPTION_CONFIRMATION:
        # confirmed after the answer, so SNS never waits on our outbound request
        envelope = sns.parse_envelope(body)
        background.add_task(confirm_later, _confirmer(request),
                            sns.check_subscribe_url(envelope), envelope.topic_arn)
    return JSONResponse(outcome)
