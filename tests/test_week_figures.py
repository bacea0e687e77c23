"""The list's closed weeks kept (reads.week_figures, migration 0017): the overview's weeks are
the same as counted from the rows after every kind of write that reaches a week that is over,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from mailer.domain import SubscriberStatus
from mailer.store.models import Subscriber, SubscriberChange, WeekFigures
from tests.console_seed import build_console_data

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)  # a Friday
TODAY = NOW.date()
WEEKS = 6
FIRST = date(2026, 10, 19)  # the Monday six weeks back


def _counted(db) -> dict:
    """Every series of the window, counted from the rows alone (what every read did before)."""
    from mailer.reads.week_figures import counted_series

    return counted_series(db, datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC))


def _shown(db) -> list:
    from mailer.reads.list_health import list_weeks

    return list_weeks(db, weeks=WEEKS, today=TODAY)


def check_the_same_as_counted(db) -> None:
    from mailer.reads.week_figures import WEEK_SERIES

    weeks, counted = _shown(db), _counted(db)
    assert weeks[0].week_start == FIRST
    for week in weeks:
        key = week.week_start.isoformat()
        for name in WEEK_SERIES:
            if name != "net":
                assert getattr(week, name) == counted[name].get(key, 0), (key, name)
    # the list's size is counted back from today's active readers by each week's net change
    for before, after in zip(weeks, weeks[1:], strict=False):
        assert after.list_size - before.list_size == counted["net"].get(
            after.week_start.isoformat(), 0)


def _kept_weeks(db) -> int:
    return db.execute(select(func.count()).select_from(WeekFigures)).scalar()


def _reader_of(db, email: str) -> Subscriber:
    return db.execute(select(Subscriber).where(Subscriber.email == email)).scalar_one()


def _this_week_s_history(db, rows: int) -> None:
    db.execute(insert(Subscriber), [
        {"email": f"new{n}@example.org", "status": SubscriberStatus.ACTIVE.value,
         "created_at": NOW, "updated_at": NOW, "source": "cli"} for n in range(rows)])
    reader = _reader_of(db, "signup1@example.org")
    db.execute(insert(SubscriberChange), [
        {"subscriber_id": reader.id, "at": NOW, "source": "cli",
         "from_status": SubscriberStatus.ACTIVE.value, "to_status": SubscriberStatus.ACTIVE.value}
        for _ in range(rows)])
    db.commit()


def check_weeks_follow_their_rows(engine) -> None:
    from mailer.store.db import session

    build_console_data(engine, now=NOW)
    with session(engine) as db:
        check_the_same_as_counted(db)
        assert _kept_weeks(db) == WEEKS - 1  # the weeks that are over; this one is counted
        # a sign-up of the week of 16 November confirms today: that week's confirmed sign-ups
        late = _reader_of(db, "signup6@example.org")
        assert late.status == SubscriberStatus.PENDING
        db.execute(update(Subscriber).where(Subscriber.id == late.id).values(
            status=SubscriberStatus.ACTIVE.value, confirmed_at=NOW))
        db.add(SubscriberChange(subscriber_id=late.id, at=NOW, source="web",
                                from_status=SubscriberStatus.PENDING,
                                to_status=SubscriberStatus.ACTIVE))
        db.commit()
        before = _shown(db)[-2]
        check_the_same_as_counted(db)
        # an import brings a reader with history dated in a week that is over
        db.add(Subscriber(email="imported@example.org", status=SubscriberStatus.ACTIVE,
                          created_at=NOW - timedelta(weeks=3), source="import"))
        db.flush()
        imported = _reader_of(db, "imported@example.org")
        db.add(SubscriberChange(subscriber_id=imported.id, at=NOW - timedelta(weeks=3),
                                to_status=SubscriberStatus.ACTIVE, source="import"))
        db.commit()
        check_the_same_as_counted(db)
        # a row committed late under a lower id (another process, on PostgreSQL): still seen
        newest = db.execute(select(func.max(SubscriberChange.id))).scalar()
        db.execute(insert(SubscriberChange), [{
            "id": newest + 50, "subscriber_id": imported.id, "at": NOW - timedelta(weeks=1),
            "source": "cli", "from_status": SubscriberStatus.ACTIVE.value,
            "to_status": SubscriberStatus.UNSUBSCRIBED.value}])
        db.commit()
        check_the_same_as_counted(db)
        db.execute(insert(SubscriberChange), [{
            "id": newest + 20, "subscriber_id": imported.id, "at": NOW - timedelta(weeks=2),
            "source": "cli", "from_status": SubscriberStatus.ACTIVE.value,
            "to_status": SubscriberStatus.BOUNCED.value}])
        db.commit()
        check_the_same_as_counted(db)
        assert _shown(db)[-2] != before


def test_closed_weeks_follow_their_rows(engine):
    check_weeks_follow_their_rows(engine)


@pytest.mark.postgres
def test_closed_weeks_follow_their_rows_on_postgresql(pg_url):
    from mailer.store.db import get_engine

    check_weeks_follow_their_rows(get_engine(pg_url))


def test_an_erasure_counts_every_week_again(mailer_env, engine):
    from mailer.store.db import session
    from mailer.store.subscribers import forget_subscriber
    from tests.conftest import TEST_SECRET

    build_console_data(engine, now=NOW)
    with session(engine) as db:
        _this_week_s_history(db, 150)  # the erased rows far below the newest ones
        check_the_same_as_counted(db)
        forget_subscriber(db, "signup4@example.org", secret=TEST_SECRET)
        check_the_same_as_counted(db)


def test_this_week_is_counted_and_nothing_kept_without_a_write(engine, monkeypatch):
    from mailer.reads import week_figures
    from mailer.store.db import session

    def refused(*_args, **_kwargs):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("INSERT", {}, Exception("attempt to write a readonly database"))

    build_console_data(engine, now=NOW)
    monkeypatch.setattr(week_figures, "insert", refused)
    with session(engine) as db:
        check_the_same_as_counted(db)
        assert _kept_weeks(db) == 0


def test_a_closed_week_is_read_from_its_kept_row(engine):
    from mailer.store.db import session

    build_console_data(engine, now=NOW)
    with session(engine) as db:
        check_the_same_as_counted(db)
        db.execute(update(WeekFigures).where(WeekFigures.week == "2026-11-16").values(signups=99))
        db.commit()
        assert _shown(db)[-2].signups == 99  # no row of it written since: not counted again


def test_recount_counts_and_keeps_the_overview_s_closed_weeks_again(mailer_env, engine):
    """After `mailer db recount` the first console visit finds every closed week of the
    overview kept, and a kept week that was wrong is counted right again."""
    from mailer.reads.list_health import OVERVIEW_WEEKS
    from mailer.store.db import session
    from tests.mailer_cli import mailer

    build_console_data(engine, now=NOW)
    with session(engine) as db:
        check_the_same_as_counted(db)  # keeps the six weeks' closed ones
        db.execute(update(WeekFigures).where(WeekFigures.week == "2026-11-16").values(signups=99))
        db.commit()
    done = mailer(mailer_env, "db", "recount")
    assert done.returncode == 0, done.stderr
    with session(engine) as db:
        assert _kept_weeks(db) == OVERVIEW_WEEKS - 1  # half a year of weeks that are over
        kept = db.execute(select(WeekFigures.signups).where(WeekFigures.week == "2026-11-16"))
        assert kept.scalar_one() != 99
        check_the_same_as_counted(db)
