"""The console's figure cache never shows an operator stale figures: after SES events, status
changes, a forgotten reader and a new campaign its answers equal a fresh count, on SQLite and
PostgreSQL. And the console's own queries give the same figures on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.console_seed import SOFT, build_console_data

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def console_engine(request, mailer_env):
    from mailer.store.db import get_engine

    if request.param == "sqlite":
        return get_engine(mailer_env["MAILER_DATABASE_URL"])
    return get_engine(request.getfixturevalue("pg_url"))


def _fresh(db):
    from mailer.reads.list_health import overview_document

    return overview_document(db)


def _cached(db, cache):
    from mailer.reads.page_cache import cached_overview_document

    return cached_overview_document(db, cache)


def _bounce(db, delivery_id: int, key: str) -> None:
    """A hard bounce for this delivery, applied by events.apply as an SES notification is."""
    from mailer.config import get_settings
    from mailer.domain import BounceType, DeliveryEvent, EventKind
    from mailer.events.apply import apply_events
    from mailer.store.models import Delivery

    row = db.get(Delivery, delivery_id)
    event = DeliveryEvent(kind=EventKind.BOUNCE, recipient=row.email, occurred_at=NOW,
                          provider_message_id=row.provider_message_id, delivery_id=row.id,
                          campaign_id=row.campaign_id, bounce_type=BounceType.PERMANENT,
                          event_id=key)
    assert apply_events(db, [event], get_settings()).recorded == {"bounce": 1}
    db.commit()


def test_cached_figures_follow_every_kind_of_write(console_engine):
    from sqlmodel import select

    from mailer.domain import SubscriberStatus
    from mailer.reads.page_cache import ConsoleCache
    from mailer.store.db import session
    from mailer.store.models import Campaign, Delivery
    from mailer.store.subscribers import change_status, forget_subscriber, get_by_email

    build_console_data(console_engine, now=NOW)
    cache = ConsoleCache()
    with session(console_engine) as db:
        assert _cached(db, cache) == _fresh(db)
        # an SES event on a finished campaign (issue 643)
        c643 = db.exec(select(Campaign).where(Campaign.issue_number == 643)).one()
        first = db.exec(select(Delivery).where(Delivery.campaign_id == c643.id)).first()
        before = next(c for c in _cached(db, cache)["campaigns"] if c["issue_number"] == 643)
        _bounce(db, first.id, "late-bounce")
        after = next(c for c in _cached(db, cache)["campaigns"] if c["issue_number"] == 643)
        assert after["bounced"] == before["bounced"] + 1
        assert _cached(db, cache) == _fresh(db)
        bundle = cache.issue_bundle(db, 643)
        assert bundle.detail.summary.bounced == after["bounced"]
        _bounce(db, db.exec(select(Delivery).where(Delivery.campaign_id == c643.id)
                            .offset(1)).first().id, "later-bounce")
        assert cache.issue_bundle(db, 643).detail.summary.bounced == after["bounced"] + 1
        # a reader unsubscribes: list figures and "unsubscribed after" move
        reader = get_by_email(db, "o2@old.example")
        change_status(db, reader, SubscriberStatus.UNSUBSCRIBED, source="one-click")
        assert _cached(db, cache) == _fresh(db)
        # a reader is forgotten: their deliveries leave the ledger
        forget_subscriber(db, "o3@old.example", secret="test-secret-key-0123456789abcdef")
        assert _cached(db, cache) == _fresh(db)
        # a new campaign
        db.add(Campaign(issue_number=647, subject="647", transport="ses", content_sha256="f" * 64,
                        started_at=NOW, status="finished", finished_at=NOW))
        db.commit()
        assert _cached(db, cache) == _fresh(db)
        assert get_by_email(db, SOFT) is not None


def test_an_event_committed_late_under_a_lower_id_is_seen(console_engine):
    """Two processes store events at once: on PostgreSQL the one holding the lower id may
    commit after a console read the higher one. The newest id then stays as it was; the
    figures must move all the same (issue 21, section 4)."""
    from sqlalchemy import func
    from sqlmodel import select

    from mailer.reads.page_cache import ConsoleCache
    from mailer.store.db import session
    from mailer.store.models import Campaign, Delivery, DeliveryEventRecord

    build_console_data(console_engine, now=NOW)
    cache = ConsoleCache()
    with session(console_engine) as db:
        c643 = db.exec(select(Campaign).where(Campaign.issue_number == 643)).one()
        rows = db.exec(select(Delivery).where(Delivery.campaign_id == c643.id,
                                              Delivery.bounced_at.is_(None)).limit(2)).all()
        newest = db.exec(select(func.max(DeliveryEventRecord.id))).one()
        # the transaction that drew newest + 2 committed first...
        db.add(DeliveryEventRecord(id=newest + 2, event_key="first-committed", kind="delivery",
                                   recipient=rows[0].email, occurred_at=NOW,
                                   delivery_id=rows[0].id, raw="{}"))
        db.commit()
        before = next(c for c in _cached(db, cache)["campaigns"] if c["issue_number"] == 643)
        # ...and the one that drew newest + 1 commits now, a bounce
        row = rows[1]
        row.bounced_at, row.bounce_type, row.delivered_at = NOW, "permanent", None
        db.add(row)
        db.add(DeliveryEventRecord(id=newest + 1, event_key="committed-late", kind="bounce",
                                   recipient=row.email, occurred_at=NOW, delivery_id=row.id,
                                   raw="{}"))
        db.commit()
        after = next(c for c in _cached(db, cache)["campaigns"] if c["issue_number"] == 643)
        assert after["bounced"] == before["bounced"] + 1
        assert _cached(db, cache) == _fresh(db)


def test_a_quiet_console_counts_nothing_again(console_engine):
    from sqlalchemy import event

    from mailer.reads.page_cache import ConsoleCache
    from mailer.store.db import session

    build_console_data(console_engine, now=NOW)
    cache = ConsoleCache()
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(console_engine, "before_cursor_execute", seen)
    try:
        with session(console_engine) as db:
            first = cache.campaign_stats(db)
            cache.campaign_stats(db)
    finally:
        event.remove(console_engine, "before_cursor_execute", seen)
    # the campaigns' figures are read from the counters: no ledger row is counted, not even
    # for the campaigns still sending (644 "sending", 645 stopped)
    assert len(first) == 13
    assert statements and not [s for s in statements if "FROM delivery" in s]


def test_console_queries_agree_on_both_databases(console_engine):
    from mailer.reads.list_health import list_weeks
    from mailer.reads.issue_report import issue_bundle, provider_stats
    from mailer.store.db import session

    build_console_data(console_engine, now=NOW)
    with session(console_engine) as db:
        bundle = issue_bundle(db, 644)
        assert [m.sent for m in bundle.detail.timeline] == [20, 16]
        assert [(p.name, p.recipients) for p in bundle.providers] == [
            ("Gmail", 20), ("example.com", 10), ("example.net", 10)]
        count, per_source, latest = bundle.unsubscribes
        assert (count, per_source) == (2, {"one-click": 2})
        assert [u.email for u in latest] == ["r2@gmail.com", "r1@gmail.com"]
        weeks = list_weeks(db, weeks=4, today=NOW.date())
        # sign-ups every 1.5 days from 1 day before NOW: 4 in the week of 9 Nov, 5, then 3
        assert [w.signups for w in weeks] == [0, 4, 5, 3]
        assert weeks[-1].list_size == weeks[-2].list_size + weeks[-1].confirmed
        assert provider_stats(db, [c.campaign_id for c in bundle.detail.campaigns], limit=1)[0] \
            .name == "Gmail"
