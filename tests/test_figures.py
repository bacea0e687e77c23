"""One definition of each figure (issue 22 §2): the reputation breaker, the operator console and
`mailer stats --json` give the same bounce and complaint rate for the same campaign.

The campaign lives in a real SQLite file and its figures come from real SES event payloads
applied through :mod:`mailer.events.apply`, as the web hook and `events replay` apply them. It
has soft bounces and undelivered messages on purpose: counting those differently (all bounces,
or complaints of everything sent) is exactly how the pages and the breaker used to disagree.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid

import pytest
from typer.testing import CliRunner

from mailer.domain import DeliveryStatus, SubscriberStatus, utcnow
from mailer.store.db import session
from mailer.store.models import Campaign, Delivery, Subscriber
from tests.conftest import FIXTURES

ISSUE = 650
SENT, DELIVERED, HARD, SOFT, COMPLAINTS = 40, 30, 2, 3, 1
USER, PASSWORD = "operator", "a long operator password"


def _payload(name: str, to: str, message_id: str) -> dict:
    payload = copy.deepcopy(json.loads((FIXTURES / "ses" / f"{name}.json").read_text()))
    mail = payload["mail"]
    mail["messageId"], mail["destination"] = message_id, [to]
    for tag in ("delivery", "campaign"):  # matched by SES message id, as in production
        mail["tags"].pop(tag, None)
    return payload


def _event(name: str, to: str, message_id: str, **change) -> dict:
    payload = _payload(name, to, message_id)
    if name == "event-delivery":
        payload["delivery"]["recipients"] = [to]
    elif name == "event-bounce":
        payload["bounce"].update(change, feedbackId=f"fb-{uuid.uuid4()}")
        payload["bounce"]["bouncedRecipients"] = [
            dict(payload["bounce"]["bouncedRecipients"][0], emailAddress=to)]
    elif name == "event-complaint":
        payload["complaint"]["feedbackId"] = f"fb-{uuid.uuid4()}"
        payload["complaint"]["complainedRecipients"] = [{"emailAddress": to}]
    return payload


def _sent_campaign(engine) -> tuple[int, list[tuple[str, str]]]:
    """A campaign of SENT messages (to address, SES message id), nothing heard back yet."""
    with session(engine) as db:
        campaign = Campaign(issue_number=ISSUE, subject=f"This Week in Rust {ISSUE}",
                            transport="ses", content_sha256="f" * 64, status="finished",
                            started_at=utcnow(), finished_at=utcnow())
        db.add(campaign)
        db.flush()
        sent = []
        for i in range(SENT):
            reader = Subscriber(email=f"reader{i}@example.org", status=SubscriberStatus.ACTIVE,
                                confirmed_at=utcnow())
            db.add(reader)
            db.flush()
            message_id = f"0102-{uuid.uuid4()}-000000"
            db.add(Delivery(campaign_id=campaign.id, subscriber_id=reader.id, email=reader.email,
                            status=DeliveryStatus.SENT, provider_message_id=message_id,
                            sent_at=utcnow()))
            sent.append((reader.email, message_id))
        db.commit()
        return campaign.id, sent


def _apply_events(engine, settings, sent: list[tuple[str, str]]) -> None:
    """30 delivered (one of them complains), 2 hard bounces, 3 soft ones (auto-replies from
    delivered mailboxes, as SES reports them), 8 not heard of yet."""
    from mailer.events.apply import ingest_events
    from mailer.events.ses import parse_notification

    payloads = [_event("event-delivery", to, mid) for to, mid in sent[:DELIVERED]]
    payloads += [_event("event-complaint", *sent[i]) for i in range(COMPLAINTS)]
    payloads += [_event("event-bounce", *sent[DELIVERED + i]) for i in range(HARD)]
    payloads += [_event("event-bounce", *sent[5 + i], bounceType="Transient",
                        bounceSubType="General") for i in range(SOFT)]
    for payload in payloads:
        ingest_events(engine, parse_notification(payload), settings)


@pytest.fixture
def campaign(mailer_env, engine, settings, monkeypatch) -> int:
    monkeypatch.setenv("MAILER_ADMIN_USER", USER)
    monkeypatch.setenv("MAILER_ADMIN_PASSWORD", PASSWORD)
    campaign_id, sent = _sent_campaign(engine)
    _apply_events(engine, settings, sent)
    return campaign_id


def _breaker_figures(engine, campaign_id: int):
    """What the breaker reads for a campaign in flight (mailer.dispatch.lease asks the same)."""
    from mailer.store.ledger import reputation

    return reputation(engine, campaign_id)


def _stats_json() -> dict:
    from mailer.cli import app

    result = CliRunner().invoke(app, ["stats", "--issue", str(ISSUE), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _console_page() -> str:
    from fastapi.testclient import TestClient

    from mailer.config import get_settings
    from mailer.web.app import create_app

    get_settings.cache_clear()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    page = TestClient(create_app(get_settings())).get(
        "/admin", headers={"Authorization": f"Basic {token}"})
    assert page.status_code == 200
    return page.text


def test_the_breaker_the_console_and_stats_json_give_one_bounce_and_complaint_rate(
        campaign, engine):
    from mailer.breaker import Thresholds
    from mailer.figures import percent
    from mailer.reads.list_health import issue_trends
    from mailer.reads.delivery_figures import campaign_stats

    figures = _breaker_figures(engine, campaign)
    assert (figures.sent, figures.delivered, figures.hard_bounces, figures.complaints) == (
        SENT, DELIVERED, HARD, COMPLAINTS)
    # the rates the breaker pauses on: SES's bounce rate counts hard bounces of the messages
    # sent; complaints are of those delivered
    bounce, complaint = HARD / SENT, COMPLAINTS / DELIVERED

    summary = _stats_json()["summary"]
    assert (summary["rates"]["bounce"], summary["rates"]["complaint"]) == (bounce, complaint)

    with session(engine) as db:
        [trend] = issue_trends(campaign_stats(db))
    assert (trend.bounce_rate, trend.complaint_rate) == (bounce, complaint)

    page = _console_page()
    row = re.search(rf'<tr data-trend="{ISSUE}">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[-2:] == [percent(bounce), percent(complaint)] == ["5.00 %", "3.33 %"]

    assert (figures.bounce_rate, figures.complaint_rate) == (bounce, complaint)

    # the breaker's own words name the same figure the pages show
    rule = Thresholds(min_sent=1, min_bounces=1, min_delivered=1, min_complaints=1)
    assert rule.crossed(figures) == ("complaints 1 of 30 delivered = 3.33 %, at or above 0.05 %")


def test_the_warnings_follow_the_figure_the_breaker_pauses_on(campaign, engine):
    """5 % hard bounces is SES's review line; the three soft bounces on top of it (12.5 % of all
    bounces) are not SES's pause line, so no page says "sending may be paused"."""
    codes = {w["code"] for w in _stats_json()["summary"]["warnings"]}
    assert "bounce_review" in codes and "bounce_pause" not in codes


def test_stats_help_says_what_each_rate_is(mailer_env):
    from mailer.cli import app

    text = CliRunner().invoke(app, ["stats", "--help"], terminal_width=200).output
    flat = " ".join(text.split())
    assert "bounce rate = hard bounces ÷ sent" in flat
    assert "complaint rate = complaints ÷ delivered" in flat


def test_render_and_check_call_the_same_size_close_to_gmails_clip():
    from mailer.check import DEFAULT_HTML_BUDGET
    from mailer.config import Settings
    from mailer.render.pipeline import size_warnings

    budget = Settings.model_fields["check_html_budget"].default
    assert DEFAULT_HTML_BUDGET == budget == 92_160
    assert size_warnings(budget) == []  # `mailer check` passes it: render does not warn
    assert "close to Gmail's" in size_warnings(budget + 1)[0]  # check fails it: render warns
