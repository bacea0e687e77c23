"""A finished send's breakdowns, kept (migration 0017): the minutes it was sent in and its
recipient domains, so `stats --issue` and the issue page stop counting every delivery.

Once a campaign has nothing queued or sending, which minute each row was sent in and which
domain each row went to do not change: only a row's status can still move (an ``unknown`` row
proven sent by its event, a rejection, an erased reader's rows going), and every such write
moves the campaign's counters (``campaign_counts``, kept on write). So the breakdowns are
counted once, on the first read after the send finished, and kept with the counters they were
counted at (``send_figures``); they hold while the counters still show those numbers, and are
counted again on the first read after the counters moved. A campaign still sending is counted
from its rows, as before.

What provider events change (delivered, bounced, complained per domain) is never kept: it is
counted from the rows the events marked, through the partial index ``ix_delivery_marked``
(not delivered, bounced or complained about: a few per thousand once the events are in).
Delivered per domain is then the domain's rows less its undelivered ones.
"""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from mailer.domain import BounceType, DeliveryStatus, utcnow
from mailer.store.models import CampaignCounts, Delivery, SendDomain, SendFigures, SendMinute
from mailer.reads import issue_sql
from mailer.reads.issue_sql import DOMAIN_COUNTS, SIMULATOR_PATTERN, STATUS_KEY
from mailer.reads.sql_figures import count_where, domain_of, engine_of, minute_bucket

# SES's mailbox simulator (`mailer doctor --live`): its deliveries are tests, never part of an
# issue's figures (the counters leave them out the same way).
NOT_SIMULATOR = ~func.lower(col(Delivery.email)).like(SIMULATOR_PATTERN)


def hard_bounce() -> ColumnElement[bool]:
    """A row the bounce rate counts (the breaker's ``ledger.reputation`` counts the same)."""
    return col(Delivery.bounced_at).is_not(None) & (col(Delivery.bounce_type) == BounceType.PERMANENT.value)


# -- keeping ------------------------------------------------------------------------------------


def _keys(session: Session, table, campaign_ids: list[int]) -> dict[int, tuple[int, ...]]:
    return issue_sql.key_rows(_text_rows(session, issue_sql.status_keys(table.__tablename__,
                                                                        campaign_ids)))


def _finished(key: tuple[int, ...]) -> bool:
    figures = dict(zip(STATUS_KEY, key, strict=True))
    return figures["queued"] == 0 and figures["sending"] == 0


def held_campaigns(session: Session, campaign_ids: list[int]) -> set[int]:
    """Those of ``campaign_ids`` whose kept breakdowns hold now. A campaign whose send has
    finished and has none that hold (never kept, or its counters moved) is counted and kept
    first; one still sending is left out, to be counted from its rows."""
    if not campaign_ids:
        return set()
    now, kept = _keys(session, CampaignCounts, campaign_ids), _keys(session, SendFigures, campaign_ids)
    held = issue_sql.holding(campaign_ids, now, kept)
    nothing = (0,) * len(STATUS_KEY)  # a campaign without rows has no counter row yet
    for campaign_id in campaign_ids:
        key = now.get(campaign_id, nothing)
        if campaign_id not in held and _finished(key) and keep(session, campaign_id, key):
            held.add(campaign_id)
    return held


def keep(session: Session, campaign_id: int, key: tuple[int, ...]) -> bool:
    """Count one finished campaign's breakdowns from its rows and keep them with ``key`` (its
    counters, read before counting: a write meanwhile leaves them unequal, so the next read
    counts again). False when the database takes no write (a read-only file, a lock held too
    long): the figures are then counted from the rows, as before, and nothing fails."""
    domains = [{"campaign_id": campaign_id, "domain": domain, "recipients": int(n), "sent": int(sent)}
               for domain, n, sent, *_ in session.execute(_counted_domains(session, [campaign_id]))]
    minutes = [{"campaign_id": campaign_id, "minute": minute, "sent": int(n)}
               for minute, n in session.execute(_counted_minutes(session, [campaign_id]))]
    figures = {"campaign_id": campaign_id, **dict(zip(STATUS_KEY, key, strict=True)),
               "kept_at": utcnow()}
    try:
        # its own short transaction: the reading session may not write (on SQLite it could
        # not take the write lock after reading), and the count above held no lock
        with engine_of(session).connect() as connection, connection.begin():
            for table in (SendFigures, SendDomain, SendMinute):
                connection.execute(delete(table).where(col(table.campaign_id) == campaign_id))
            for table, rows in ((SendDomain, domains), (SendMinute, minutes)):
                if rows:
                    connection.execute(insert(table), rows)
            connection.execute(insert(SendFigures), [figures])
    except OperationalError:
        return False
    return True


def keep_finished_send(engine: Engine, campaign_id: int) -> None:
    """Keep a campaign's breakdowns as its send ends (nothing when rows are still queued or
    sending, or its figures are kept already), so the first read after it does not count."""
    with Session(engine) as session:
        held_campaigns(session, [campaign_id])


def keep_all_finished(session: Session) -> int:
    """Count and keep the breakdowns of every finished campaign again (``mailer db recount``);
    how many campaigns."""
    key_columns = [getattr(CampaignCounts, name) for name in STATUS_KEY]
    rows = session.execute(select(col(CampaignCounts.campaign_id), *key_columns)).all()
    finished = [(campaign_id, tuple(int(n) for n in key)) for campaign_id, *key in rows
                if _finished(tuple(int(n) for n in key))]
    return sum(keep(session, campaign_id, key) for campaign_id, key in finished)


# -- the breakdowns, counted from the rows --------------------------------------------------------


def _counted_domains(session: Session, campaign_ids: list[int]) -> Select:
    domain = domain_of(session, col(Delivery.email)).label("domain")
    return (
        select(domain, func.count(col(Delivery.id)).label("recipients"),
               count_where(col(Delivery.status) == DeliveryStatus.SENT.value).label("sent"),
               count_where(col(Delivery.delivered_at).is_not(None)).label("delivered"),
               count_where(col(Delivery.bounced_at).is_not(None)).label("bounced"),
               count_where(hard_bounce()).label("bounced_hard"),
               count_where(col(Delivery.complained_at).is_not(None)).label("complained"))
        .where(col(Delivery.campaign_id).in_(campaign_ids), NOT_SIMULATOR)
        .group_by(domain)
    )


def _counted_minutes(session: Session, campaign_ids: list[int]) -> Select:
    minute = minute_bucket(session, col(Delivery.sent_at)).label("minute")
    return (select(minute, func.count(col(Delivery.id)).label("sent"))
            .where(col(Delivery.campaign_id).in_(campaign_ids), col(Delivery.sent_at).is_not(None),
                   NOT_SIMULATOR)
            .group_by(minute))


def _text_rows(session: Session, query: tuple[str, dict]) -> list:
    sql, params = query
    return list(session.execute(text(sql), params))


def domain_rows(session: Session, campaign_ids: list[int],
                limit: int | None) -> list[tuple[str, dict[str, int]]]:
    """(domain, its counts) for the campaigns together, most recipients first (then by name):
    kept breakdowns where they hold (:func:`mailer.reads.issue_sql.held_domains`, the text
    `stats --issue` also reads through sqlite3), the rows counted otherwise."""
    held = held_campaigns(session, campaign_ids)
    counting = [campaign_id for campaign_id in campaign_ids if campaign_id not in held]
    dialect = session.get_bind().dialect.name
    if held and not counting:  # a finished send: ordered and cut in the database
        return issue_sql.add_up_domains(_text_rows(session, issue_sql.held_domains(dialect, sorted(held), limit)),
                       limit)
    rows = _text_rows(session, issue_sql.held_domains(dialect, sorted(held), None)) if held else []
    rows += list(session.execute(_counted_domains(session, counting))) if counting else []
    return issue_sql.add_up_domains(rows, limit)


def minute_rows(session: Session, campaign_ids: list[int]) -> list[tuple[str, int]]:
    """(minute, rows sent in it) for the campaigns together, in order, empty minutes left out."""
    held = held_campaigns(session, campaign_ids)
    counting = [campaign_id for campaign_id in campaign_ids if campaign_id not in held]
    rows = _text_rows(session, issue_sql.kept_minutes(sorted(held))) if held else []
    if counting:
        rows += list(session.execute(_counted_minutes(session, counting)))
    return issue_sql.add_up_minutes(rows)


__all__ = ["DOMAIN_COUNTS", "NOT_SIMULATOR", "STATUS_KEY", "domain_rows", "hard_bounce", "held_campaigns", "keep",
           "keep_all_finished", "keep_finished_send", "minute_rows"]
