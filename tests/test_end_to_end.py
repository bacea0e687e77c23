"""End to end: send issue 644 through a local SES endpoint, post what SES would say back through
signed SNS notifications to the running web app, and read the outcome where an operator would:
`mailer stats --issue 644 --json` and the operator page in headless Chromium.

Real parts throughout: the `mailer` commands in subprocesses, moto_server as SES, the web app
under uvicorn, Chromium. Only the SNS signing certificate is the test's own, handed to the
verifier through its injectable fetcher (``app.state.sns_cert_fetcher``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from mailer.domain import SubscriberStatus
from tests.conftest import FIXTURES
from tests.plugins.sns_signing import TOPIC_ARN, serve_app

pytestmark = [pytest.mark.peer, pytest.mark.slow]

MAILER = str(Path(sys.executable).parent / "mailer")
USER, PASSWORD = "operator", "end-to-end operator password"
BOUNCER, COMPLAINER, READER, QUIET = (
    "gone@bounce.example", "angry@example.com", "happy@example.com", "quiet@example.net")


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([MAILER, *args], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"mailer {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _ses_event(kind: str, to: str, message_id: str) -> dict:
    """The project's twin of an SES event-publishing payload, about our message to ``to``."""
    payload = copy.deepcopy(json.loads((FIXTURES / "ses" / f"event-{kind}.json").read_text()))
    payload["mail"]["messageId"] = message_id
    payload["mail"]["destination"] = [to]
    payload["mail"].pop("tags", None)  # the message id alone must find the row
    if kind == "bounce":
        payload["bounce"]["bouncedRecipients"] = [
            dict(payload["bounce"]["bouncedRecipients"][0], emailAddress=to)]
    if kind == "complaint":
        payload["complaint"]["complainedRecipients"] = [
            dict(payload["complaint"]["complainedRecipients"][0], emailAddress=to)]
    if kind == "delivery":
        payload["delivery"]["recipients"] = [to]
    return payload


def _post_signed(base_url: str, signer, payload: dict) -> httpx.Response:
    envelope = signer.notification(payload, subject="Amazon SES Email Event Notification",
                                   message_id=str(uuid.uuid4()))
    return httpx.post(f"{base_url}/webhooks/ses", content=json.dumps(envelope),
                      headers={"content-type": "text/plain; charset=UTF-8",
                               "x-amz-sns-message-type": "Notification"}, timeout=30)


def _message_ids(engine) -> dict[str, str]:
    from mailer.store.db import session
    from mailer.store.models import Delivery

    with session(engine) as db:
        return {row.email: row.provider_message_id for row in db.exec(select(Delivery)).all()}


def _statuses(engine) -> dict[str, str]:
    from mailer.store.db import session
    from mailer.store.models import Subscriber

    with session(engine) as db:
        return {s.email: str(s.status) for s in db.exec(select(Subscriber)).all()}


@pytest.mark.browser
def test_send_events_and_stats_end_to_end(mailer_env, moto_ses, sns_signer, browser, tmp_path,
                                          monkeypatch):
    from mailer.config import get_settings
    from mailer.store.db import get_engine, reset_engines
    from mailer.web.app import create_app

    settings_env = {**mailer_env, **moto_ses.env, "MAILER_SNS_TOPIC_ARNS": TOPIC_ARN,
                    "MAILER_ADMIN_USER": USER, "MAILER_ADMIN_PASSWORD": PASSWORD,
                    "MAILER_SEND_RATE": "50"}
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    env = {**os.environ, **settings_env}
    moto_ses.verify_identity("example.org")

    # 1. four confirmed readers, and the issue sent to them through SES (moto_server)
    readers = tmp_path / "readers.csv"
    readers.write_text("email\n" + "\n".join([BOUNCER, COMPLAINER, READER, QUIET]) + "\n")
    _run(env, "subscribers", "import", "--confirmed", str(readers))
    _run(env, "send", "--issue", "644", "--yes")
    sent = moto_ses.sent_messages()
    assert len(sent) == 4
    assert {d for m in sent for d in m["destinations"]} == {BOUNCER, COMPLAINER, READER, QUIET}

    get_settings.cache_clear()
    reset_engines()
    engine = get_engine(get_settings().database_url)
    ids = _message_ids(engine)
    assert all(ids.values()) and len(set(ids.values())) == 4

    # 2. SES reports back through SNS to the running web app
    app = create_app(get_settings())
    app.state.sns_cert_fetcher = sns_signer.fetcher
    with serve_app(app) as base_url:
        for kind, to in (("delivery", READER), ("delivery", COMPLAINER), ("bounce", BOUNCER),
                         ("complaint", COMPLAINER)):
            reply = _post_signed(base_url, sns_signer, _ses_event(kind, to, ids[to]))
            assert reply.status_code == 200, reply.text

        assert _statuses(engine) == {BOUNCER: SubscriberStatus.BOUNCED.value,
                                     COMPLAINER: SubscriberStatus.COMPLAINED.value,
                                     READER: SubscriberStatus.ACTIVE.value,
                                     QUIET: SubscriberStatus.ACTIVE.value}

        # 3. the operator's view from the command line
        detail = json.loads(_run(env, "stats", "--issue", "644", "--json").stdout)
        summary = detail["summary"]
        assert {key: summary[key] for key in (
            "recipients", "sent", "delivered", "bounced", "bounced_hard", "bounced_soft",
            "complained", "failed", "unknown")} == {
            "recipients": 4, "sent": 4, "delivered": 2, "bounced": 1, "bounced_hard": 1,
            "bounced_soft": 0, "complained": 1, "failed": 0, "unknown": 0}
        # one hard bounce of 4 sent; one complaint of the 2 delivered (mailer.figures)
        assert summary["rates"]["bounce"] == 0.25 and summary["rates"]["complaint"] == 0.5
        assert {w["code"] for w in summary["warnings"]} == {"bounce_pause", "complaint_pause",
                                                            "gmail_spam"}
        bounce_domain = next(d for d in detail["domains"] if d["domain"] == "bounce.example")
        assert (bounce_domain["bounced"], bounce_domain["bounce_rate"]) == (1, 1.0)
        assert sum(b["sent"] for b in detail["sent_per_minute"]) == 4
        assert detail["bounce_reasons"][0]["bounce_type"] == "permanent"

        # 4. ... and on the operator page, on a phone
        context = browser.new_context(viewport={"width": 375, "height": 800},
                                      http_credentials={"username": USER, "password": PASSWORD})
        try:
            page = context.new_page()
            assert page.goto(f"{base_url}/admin").status == 200
            cells = page.locator('tr[data-issue="644"] td').all_inner_texts()
            assert cells[:5] == ["4", "4", "2", "1 (1 / 0)", "1"]
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            assert page.goto(f"{base_url}/admin/issues/644").status == 200
            chart = page.get_by_role("img", name=re.compile("Issue 644: messages sent per"))
            assert chart.is_visible()
            assert "4 messages sent" in chart.locator("desc").text_content()
            assert page.get_by_text("bounce.example").is_visible()
        finally:
            context.close()
