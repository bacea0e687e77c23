"""Delivery stats on hand-built ledgers: every figure and rate checked, on SQLite and PostgreSQL.

The ledger below is written row by row with the models, as the dispatcher and the event handler
would leave it, so the expected figures can be counted by hand from this file.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest

from mailer.domain import SubscriberStatus
from mailer.store.models import Campaign, Subscriber, SubscriberChange
from tests.mailer_cli import mailer
from tests.stats_ledger import HARD_BOUNCE, after_start, build_ledger


def check_issue_644(row) -> None:
    assert (row.recipients, row.sent, row.failed, row.unknown, row.skipped) == (40, 36, 2, 1, 1)
    assert (row.delivered, row.bounced, row.bounced_hard, row.bounced_soft) == (30, 3, 2, 1)
    assert (row.complained, row.unsubscribed) == (1, 2)
    # SES's bounce rate (hard bounces ÷ sent) and complaints ÷ delivered: the breaker's figures
    assert row.bounce_rate == pytest.approx(2 / 36)
    assert row.hard_bounce_rate == pytest.approx(2 / 36)
    assert row.any_bounce_rate == pytest.approx(3 / 36)
    assert row.complaint_rate == pytest.approx(1 / 30)
    assert row.delivery_rate == pytest.approx(30 / 36)
    assert {w.code for w in row.warnings} == {"bounce_review", "complaint_pause", "gmail_spam"}


def check_detail(detail) -> None:
    check_issue_644(detail.summary)
    top = detail.bounce_reasons[0]
    assert (top.bounce_type, top.bounce_subtype, top.diagnostic, top.count) == (
        "permanent", "General", HARD_BOUNCE, 2)
    assert [(r.bounce_subtype, r.count) for r in detail.bounce_reasons] == [
        ("General", 2), ("MailboxFull", 1)]
    domains = {d.domain: d for d in detail.domains}
    assert list(domains) == ["gmail.com", "example.com", "example.net"]
    assert (domains["gmail.com"].recipients, domains["gmail.com"].sent,
            domains["gmail.com"].complained) == (20, 20, 1)
    # rows 30-35 are example.net's first six: 30-32 bounced, 36-39 never went out
    net = domains["example.net"]
    assert (net.recipients, net.sent, net.bounced, net.bounced_hard, net.delivered) == (
        10, 6, 3, 2, 0)
    assert net.bounce_rate == pytest.approx(2 / 6)  # hard bounces ÷ sent, as for the campaign
    assert [(b.start, b.sent) for b in detail.timeline] == [(after_start(0), 20), (after_start(2), 16)]


def test_warnings_start_at_half_the_review_thresholds():
    from mailer.rate_warnings import bounce_warnings, complaint_warnings

    def codes(warnings):
        return [w.code for w in warnings]

    assert codes(bounce_warnings(None)) == []
    assert codes(bounce_warnings(0.0249)) == []
    assert codes(bounce_warnings(0.025)) == ["bounce_near_review"]
    assert codes(bounce_warnings(0.05)) == ["bounce_review"]
    assert codes(bounce_warnings(0.10)) == ["bounce_pause"]
    assert codes(complaint_warnings(0.00049)) == []
    assert codes(complaint_warnings(0.0005)) == ["complaint_near_review"]
    assert codes(complaint_warnings(0.001)) == ["complaint_review"]
    assert codes(complaint_warnings(0.003)) == ["complaint_review", "gmail_spam"]
    assert codes(complaint_warnings(0.005)) == ["complaint_pause", "gmail_spam"]
    assert "0.30 %" in complaint_warnings(0.004)[1].message


def test_per_campaign_figures_on_sqlite(engine):
    from mailer.store.db import session
    from mailer.reads.delivery_figures import campaign_stats

    build_ledger(engine)
    with session(engine) as db:
        rows = campaign_stats(db)
    assert [r.issue_number for r in rows] == [644, 643]
    check_issue_644(rows[0])
    clean = rows[1]
    assert (clean.recipients, clean.sent, clean.delivered, clean.bounced, clean.unsubscribed) == (
        10, 10, 10, 0, 0)
    assert clean.bounce_rate == 0 and clean.warnings == []


def test_issue_detail_on_sqlite(engine):
    from mailer.store.db import session
    from mailer.reads.delivery_figures import issue_detail

    build_ledger(engine)
    with session(engine) as db:
        check_detail(issue_detail(db, 644))


def test_issue_detail_through_a_session_bound_to_one_connection(engine):
    # as a migration's session is (0014 recounts through one): the link figures are read from
    # the engine behind that connection, which has no connect() of its own
    from sqlalchemy.orm import Session

    from mailer.reads.delivery_figures import issue_detail

    build_ledger(engine)
    with engine.connect() as connection, Session(bind=connection) as db:
        check_detail(issue_detail(db, 644))


def test_a_campaign_with_nothing_sent_has_no_rates(engine):
    from mailer.store.db import session
    from mailer.reads.delivery_figures import campaign_stats

    with session(engine) as db:
        db.add(Campaign(issue_number=700, subject="s", transport="outbox", content_sha256="c"))
        db.commit()
        [row] = campaign_stats(db)
    assert (row.recipients, row.sent) == (0, 0)
    assert row.bounce_rate is None and row.as_dict()["rates"]["complaint"] is None


def _build_growth(engine) -> None:
    from mailer.store.db import session

    monday = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
    with session(engine) as db:
        people = [
            Subscriber(email=f"g{i}@example.org", created_at=at)
            for i, at in enumerate([
                monday + timedelta(hours=1),  # week of 16 Nov
                monday + timedelta(days=6, hours=23, minutes=59),  # Sunday 22 Nov: same week
                monday + timedelta(days=7),  # Monday 23 Nov: next week
                monday + timedelta(days=8),
            ])
        ]
        db.add_all(people)
        db.flush()
        changes = [
            (people[0], monday + timedelta(hours=2), SubscriberStatus.ACTIVE),
            (people[1], monday + timedelta(days=7, hours=1), SubscriberStatus.ACTIVE),
            (people[2], monday + timedelta(days=7, hours=2), SubscriberStatus.ACTIVE),
            (people[0], monday + timedelta(days=8), SubscriberStatus.UNSUBSCRIBED),
            (people[1], monday + timedelta(days=9), SubscriberStatus.BOUNCED),
            (people[2], monday + timedelta(days=9), SubscriberStatus.COMPLAINED),
        ]
        for person, at, status in changes:
            db.add(SubscriberChange(subscriber_id=person.id, at=at, to_status=status, source="t"))
            person.status = status
        db.commit()


def check_growth(weeks, totals) -> None:
    assert [w.as_dict() for w in weeks] == [
        {"week_start": "2026-11-16", "new": 2, "imported": 0, "confirmed": 1, "unsubscribed": 0,
         "suppressed": 0, "net": 1},
        {"week_start": "2026-11-23", "new": 2, "imported": 0, "confirmed": 2, "unsubscribed": 1,
         "suppressed": 2, "net": -1},
    ]
    assert totals == {"pending": 1, "active": 0, "unsubscribed": 1, "bounced": 1,
                      "complained": 1}


def test_subscriber_growth_per_week_on_sqlite(engine):
    from mailer.store.db import session
    from mailer.reads.subscriber_figures import subscribers_by_status, subscriber_growth

    _build_growth(engine)
    with session(engine) as db:
        check_growth(subscriber_growth(db), subscribers_by_status(db))
        assert [w.week_start for w in subscriber_growth(db, weeks=1)] == [date(2026, 11, 23)]


@pytest.mark.postgres
def test_the_same_figures_on_postgresql(pg_url):
    from mailer.store.db import get_engine, session
    from mailer.reads.delivery_figures import campaign_stats, issue_detail

    engine = get_engine(pg_url)
    build_ledger(engine)
    with session(engine) as db:
        rows = campaign_stats(db)
        check_issue_644(rows[0])
        assert rows[1].delivered == 10
        check_detail(issue_detail(db, 644))


@pytest.mark.postgres
def test_subscriber_growth_on_postgresql(pg_url):
    from mailer.store.db import get_engine, session
    from mailer.reads.subscriber_figures import subscribers_by_status, subscriber_growth

    engine = get_engine(pg_url)
    _build_growth(engine)
    with session(engine) as db:
        check_growth(subscriber_growth(db), subscribers_by_status(db))


# -- the command ------------------------------------------------------------------------------


def _mailer(env: dict, *args: str) -> subprocess.CompletedProcess:
    return mailer({**env, "COLUMNS": "200"}, "stats", *args)


def test_stats_command_prints_table_json_and_warnings(mailer_env, engine):
    build_ledger(engine)
    table = _mailer(mailer_env)
    assert table.returncode == 0, table.stderr
    assert "644" in table.stdout and "643" in table.stdout
    assert "5.56 %" in table.stdout  # 644's bounce rate: 2 hard bounces of 36 sent
    assert "SES's 5 % review threshold" in table.stdout
    assert "Gmail's 0.30 % spam-rate line" in table.stdout

    overview = json.loads(_mailer(mailer_env, "--json").stdout)
    first = overview["campaigns"][0]
    assert (first["issue_number"], first["sent"], first["bounced_hard"], first["unsubscribed"]) == (
        644, 36, 2, 2)
    assert first["rates"]["bounce"] == pytest.approx(2 / 36)
    assert first["rates"]["any_bounce"] == pytest.approx(3 / 36)
    assert first["rates"]["complaint"] == pytest.approx(1 / 30)
    assert first["started_at"] == "2026-11-18T10:00:00+00:00"

    detail = json.loads(_mailer(mailer_env, "--issue", "644", "--json").stdout)
    assert set(detail) == {"issue_number", "summary", "campaigns", "bounce_reasons", "domains",
                           "sent_per_minute", "links"}
    assert detail["sent_per_minute"] == [{"minute": "2026-11-18T10:00:00+00:00", "sent": 20},
                                         {"minute": "2026-11-18T10:02:00+00:00", "sent": 16}]
    assert detail["domains"][2] == {"domain": "example.net", "recipients": 10, "sent": 6,
                                    "delivered": 0, "bounced": 3, "bounced_hard": 2,
                                    "complained": 0, "bounce_rate": pytest.approx(2 / 6)}

    text = _mailer(mailer_env, "--issue", "644")
    assert "smtp; 550 5.1.1 user unknown" in text.stdout and "example.net" in text.stdout


def test_stats_command_refuses_bad_requests_in_one_line(mailer_env, engine):
    build_ledger(engine)
    missing = _mailer(mailer_env, "--issue", "999")
    assert missing.returncode == 1
    assert "issue 999 has not been sent" in missing.stderr
    assert "Traceback" not in missing.stderr
    both = _mailer(mailer_env, "--issue", "644", "--subscribers")
    assert both.returncode == 1 and "choose one" in both.stderr


def test_subscribers_json(mailer_env, engine):
    _build_growth(engine)
    result = _mailer(mailer_env, "--subscribers", "--json")
    data = json.loads(result.stdout)
    assert data["totals"]["complained"] == 1
    assert [w["net"] for w in data["weeks"]] == [1, -1]
