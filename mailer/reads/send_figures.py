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

from sqlalchemy import Integer, delete, func, insert, literal, or_, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from mailer.domain import BounceType, DeliveryStatus, utcnow
from mailer.store.models import CampaignCounts, Delivery, SendDomain, SendFigures, SendMinute
from mailer.reads.sql_figures import count_where, domain_of, engine_of, minute_bucket
from mailer.wire import SIMULATOR_DOMAIN

# The counters a campaign's breakdowns were counted at: they hold while these stay the same.
STATUS_KEY = ("recipients", "queued", "sending", "sent", "failed", "skipped", "unknown")
DOMAIN_COUNTS = ("recipients", "sent", "delivered", "bounced", "bounced_hard", "complained")

# SES's mailbox simulator (`mailer doctor --live`): its deliveries are tests, never part of an
# issue's figures (the counters leave them out the same way).
NOT_SIMULATOR = ~func.lower(col(Delivery.email)).like(f"%@{SIMULATOR_DOMAIN}")


def marked() -> ColumnElement[bool]:
    """The rows ``ix_delivery_marked`` holds: the condition of migration 0017, written the same
    so the database reads them from that index."""
    return or_(col(Delivery.delivered_at).is_(None), col(Delivery.bounced_at).is_not(None),
               col(Delivery.complained_at).is_not(None))


def hard_bounce() -> ColumnElement[bool]:
    """A row the bounce rate counts (the breaker's ``ledger.reputation`` counts the same)."""
    return col(Delivery.bounced_at).is_not(None) & (col(Delivery.bounce_type) == BounceType.PERMANENT.value)


# -- keeping ------------------------------------------------------------------------------------


def _keys(session: Session, table, campaign_ids: list[int]) -> dict[int, tuple[int, ...]]:
    columns = [getattr(table, name) for name in STATUS_KEY]
    rows = session.execute(select(col(table.campaign_id), *columns)
                           .where(col(table.campaign_id).in_(campaign_ids)))
    return {campaign_id: tuple(int(n) for n in counts) for campaign_id, *counts in rows}


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
    nothing = (0,) * len(STATUS_KEY)  # a campaign without rows has no counter row yet
    held = set()
    for campaign_id in campaign_ids:
        key = now.get(campaign_id, nothing)
        if kept.get(campaign_id) == key or (_finished(key) and keep(session, campaign_id, key)):
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


def _zero(name: str) -> ColumnElement[int]:
    return literal(0, Integer).label(name)


def _held_domains(session: Session, campaign_ids: list[int]) -> list[Select]:
    """The kept rows and sent per domain (every row counted as delivered), and what the
    events changed, from the marked rows: the undelivered taken off, the bounces and
    complaints."""
    kept: Select = (
        select(col(SendDomain.domain).label("domain"),
               col(SendDomain.recipients).label("recipients"),
               col(SendDomain.sent).label("sent"), col(SendDomain.recipients).label("delivered"),
               _zero("bounced"), _zero("bounced_hard"), _zero("complained"))
        .where(col(SendDomain.campaign_id).in_(campaign_ids)))
    domain = domain_of(session, col(Delivery.email)).label("domain")
    events = (select(domain, _zero("recipients"), _zero("sent"),
                     (-count_where(col(Delivery.delivered_at).is_(None))).label("delivered"),
                     count_where(col(Delivery.bounced_at).is_not(None)).label("bounced"),
                     count_where(hard_bounce()).label("bounced_hard"),
                     count_where(col(Delivery.complained_at).is_not(None)).label("complained"))
              .where(col(Delivery.campaign_id).in_(campaign_ids), marked(), NOT_SIMULATOR)
              .group_by(domain))
    return [kept, events]


def domain_rows(session: Session, campaign_ids: list[int],
                limit: int | None) -> list[tuple[str, dict[str, int]]]:
    """(domain, its counts) for the campaigns together, most recipients first (then by name,
    in the database's order): kept breakdowns where they hold, the rows counted otherwise."""
    held = held_campaigns(session, campaign_ids)
    counting = [campaign_id for campaign_id in campaign_ids if campaign_id not in held]
    parts = ((_held_domains(session, sorted(held)) if held else [])
             + ([_counted_domains(session, counting)] if counting else []))
    if not parts:
        return []
    every = union_all(*parts).subquery()
    sums = [func.sum(every.c[name]).label(name) for name in DOMAIN_COUNTS]
    query = (select(every.c.domain, *sums).group_by(every.c.domain)
             .order_by(sums[0].desc(), every.c.domain).limit(limit))
    return [(name, {key: int(n) for key, n in zip(DOMAIN_COUNTS, counts, strict=True)})
            for name, *counts in session.execute(query)]


def minute_rows(session: Session, campaign_ids: list[int]) -> list[tuple[str, int]]:
    """(minute, rows sent in it) for the campaigns together, in order, empty minutes left out."""
    held = held_campaigns(session, campaign_ids)
    counting = [campaign_id for campaign_id in campaign_ids if campaign_id not in held]
    parts: list[Select] = []
    if held:
        parts.append(select(col(SendMinute.minute).label("minute"), col(SendMinute.sent).label("sent"))
                     .where(col(SendMinute.campaign_id).in_(sorted(held))))
    if counting:
        parts.append(_counted_minutes(session, counting))
    if not parts:
        return []
    every = union_all(*parts).subquery()
    query = (select(every.c.minute, func.sum(every.c.sent))
             .group_by(every.c.minute).order_by(every.c.minute))
    return [(str(minute), int(n)) for minute, n in session.execute(query)]


__all__ = ["NOT_SIMULATOR", "domain_rows", "hard_bounce", "held_campaigns", "keep",
           "keep_all_finished", "keep_finished_send", "marked", "minute_rows"]
