"""A finished send's breakdowns kept (reads.send_figures, migration 0017): the same figures as
counted from the rows, kept once the send is over, counted again when its counters move, and
the events' figures always current; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from mailer.domain import DeliveryStatus
from mailer.store.models import Campaign, Delivery, SendDomain, SendFigures, SendMinute
from tests.stats_ledger import after_start, build_ledger


def _campaign_644(db) -> int:
    return db.execute(select(Campaign.id).where(Campaign.issue_number == 644)).scalar_one()


def _counted(db, campaign_id: int) -> tuple[list, list]:
    """Domains and minutes as counted from the rows alone (what every read did before)."""
    from mailer.reads import send_figures

    domains = send_figures._counted_domains(db, [campaign_id]).subquery()
    by_domain = [(name, dict(zip(send_figures.DOMAIN_COUNTS, map(int, counts), strict=True)))
                 for name, *counts in db.execute(select(domains).order_by(
                     domains.c.recipients.desc(), domains.c.domain))]
    minutes = [(minute, int(n)) for minute, n in db.execute(
        send_figures._counted_minutes(db, [campaign_id]).order_by("minute"))]
    return by_domain, minutes


def _kept_at(db, campaign_id: int):
    return db.execute(select(SendFigures.kept_at)
                      .where(SendFigures.campaign_id == campaign_id)).scalar()


def check_kept_and_followed(engine) -> None:
    from mailer.reads.send_figures import domain_rows, minute_rows
    from mailer.store.db import session

    build_ledger(engine)
    with session(engine) as db:
        campaign = _campaign_644(db)
        assert _kept_at(db, campaign) is None  # nothing kept before the first read
        domains, minutes = domain_rows(db, [campaign], None), minute_rows(db, [campaign])
        assert (domains, minutes) == _counted(db, campaign)
        kept_at = _kept_at(db, campaign)
        assert kept_at is not None  # no row queued or sending: kept
        assert db.execute(select(func.count()).select_from(SendDomain)
                          .where(SendDomain.campaign_id == campaign)).scalar() == 3
        # a delivery event: counters move, but not the ones the breakdowns were kept at
        row_33 = db.execute(select(Delivery.id).where(Delivery.campaign_id == campaign)
                            .order_by(Delivery.id).offset(33).limit(1)).scalar_one()
        db.execute(update(Delivery).where(Delivery.id == row_33)
                   .values(delivered_at=after_start(9)))
        db.commit()
        domains = domain_rows(db, [campaign], None)
        assert dict(domains)["example.net"]["delivered"] == 1
        assert (domains, minute_rows(db, [campaign])) == _counted(db, campaign)
        assert _kept_at(db, campaign) == kept_at  # read from the kept rows, not counted again
        # the unknown row proven sent by a late event (as events.apply does): counted again
        db.execute(update(Delivery).where(Delivery.campaign_id == campaign,
                                          Delivery.status == DeliveryStatus.UNKNOWN.value)
                   .values(status=DeliveryStatus.SENT.value, sent_at=after_start(4)))
        db.commit()
        domains, minutes = domain_rows(db, [campaign], None), minute_rows(db, [campaign])
        assert (domains, minutes) == _counted(db, campaign)
        assert ("2026-11-18T10:04", 1) in minutes
        assert _kept_at(db, campaign) != kept_at


def test_a_finished_send_is_kept_and_follows_its_events(engine):
    check_kept_and_followed(engine)


@pytest.mark.postgres
def test_a_finished_send_is_kept_and_follows_its_events_on_postgresql(pg_url):
    from mailer.store.db import get_engine

    check_kept_and_followed(get_engine(pg_url))


def test_a_send_still_going_is_counted_from_its_rows(engine):
    from mailer.reads.send_figures import domain_rows, minute_rows
    from mailer.store.db import session

    build_ledger(engine)
    with session(engine) as db:
        campaign = _campaign_644(db)
        db.execute(update(Delivery).where(Delivery.campaign_id == campaign,
                                          Delivery.status == DeliveryStatus.FAILED.value)
                   .values(status=DeliveryStatus.QUEUED.value))
        db.commit()
        assert (domain_rows(db, [campaign], None), minute_rows(db, [campaign])) == _counted(
            db, campaign)
        assert _kept_at(db, campaign) is None
        assert db.execute(select(func.count()).select_from(SendMinute)
                          .where(SendMinute.campaign_id == campaign)).scalar() == 0


def test_figures_are_counted_when_the_database_takes_no_write(engine, monkeypatch):
    from mailer.reads import send_figures
    from mailer.store.db import session

    def refused(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("attempt to write a readonly database"))

    monkeypatch.setattr(send_figures, "insert", refused)
    build_ledger(engine)
    with session(engine) as db:
        campaign = _campaign_644(db)
        assert (send_figures.domain_rows(db, [campaign], 2),
                send_figures.minute_rows(db, [campaign])) == (
            _counted(db, campaign)[0][:2], _counted(db, campaign)[1])
        assert _kept_at(db, campaign) is None


def test_recount_keeps_every_finished_send_again(engine):
    from mailer.reads.send_figures import keep_all_finished
    from mailer.store.db import session

    build_ledger(engine)
    with session(engine) as db:
        assert keep_all_finished(db) == 2  # issues 644 and 643
        campaign = _campaign_644(db)
        assert db.execute(select(SendMinute.minute, SendMinute.sent)
                          .where(SendMinute.campaign_id == campaign)
                          .order_by(SendMinute.minute)).all() == [
            ("2026-11-18T10:00", 20), ("2026-11-18T10:02", 16)]


@pytest.mark.slow
def test_a_send_that_ends_keeps_its_breakdowns(mailer_env, engine):
    from mailer.store.db import session
    from tests.fakes import add_readers
    from tests.mailer_cli import mailer

    add_readers(engine, "one@example.org", "two@Example.NET", "three@example.org")
    limited = mailer(mailer_env, "send", "--issue", "644", "--yes", "--limit", "2")
    assert limited.returncode == 0, limited.stderr
    with session(engine) as db:
        campaign = _campaign_644(db)
        assert _kept_at(db, campaign) is None  # one reader still queued
    rest = mailer(mailer_env, "send", "--issue", "644", "--yes", "--resume")
    assert rest.returncode == 0, rest.stderr
    with session(engine) as db:
        assert _kept_at(db, campaign) is not None  # kept as the send ended, before any read
        assert dict(db.execute(select(SendDomain.domain, SendDomain.sent)
                               .where(SendDomain.campaign_id == campaign)).all()) == {
            "example.org": 2, "example.net": 1}
