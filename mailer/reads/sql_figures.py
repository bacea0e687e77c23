"""SQL building blocks of the figure queries (``stats``, ``subscriber_reads``, ``console``):
conditional counts, time buckets and the domain of an address.

The figures are aggregated in SQL on SQLite and PostgreSQL alike; the few places where the two
dialects differ are these helpers.
"""

from __future__ import annotations

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

# Rows are looked at again this far below the newest id seen: on PostgreSQL a transaction
# holding a lower id may commit after a higher one was read.
EVENT_SLACK = 100


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def engine_of(session: Session) -> Engine:
    """The engine behind ``session``, also when it is bound to one connection (a migration's)."""
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def minute_bucket(session: Session, column) -> ColumnElement:
    if _dialect(session) == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD\"T\"HH24:MI")
    # SQLite keeps UTC times as "YYYY-MM-DD HH:MM:SS.ffffff" text
    return func.strftime("%Y-%m-%dT%H:%M", column)


def week_bucket(session: Session, column) -> ColumnElement:
    if _dialect(session) == "postgresql":
        return func.to_char(func.date_trunc("week", func.timezone("UTC", column)), "YYYY-MM-DD")
    # next Sunday (or the same day), then back six days: the Monday that starts the ISO week
    return func.date(column, "weekday 0", "-6 days")


def domain_of(session: Session, column) -> ColumnElement[str]:
    if _dialect(session) == "postgresql":
        return func.lower(func.split_part(column, "@", 2))
    return func.lower(func.substr(column, func.instr(column, "@") + 1))


def tail_below(session: Session, column, newest: int) -> int:
    """How many rows sit within ``EVENT_SLACK`` below ``newest`` (it included): a row committed
    late under a lower id changes this count while the newest id stays the same."""
    return int(session.execute(select(func.count()).where(
        column > newest - EVENT_SLACK, column <= newest)).scalar() or 0)


def newest_and_tail(session: Session, column) -> tuple[int, int]:
    """The newest id of a table that grows by id, and :func:`tail_below` it."""
    newest = int(session.execute(select(func.max(column))).scalar() or 0)
    return newest, tail_below(session, column, newest)


__all__ = ["EVENT_SLACK", "count_where", "domain_of", "engine_of", "minute_bucket", "newest_and_tail",
           "tail_below", "week_bucket"]
