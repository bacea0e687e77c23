"""SQL building blocks of the figure queries (``stats``, ``subscriber_reads``, ``console``):
conditional counts, time buckets and the domain of an address.

The figures are aggregated in SQL on SQLite and PostgreSQL alike; the few places where the two
dialects differ are these helpers.
"""

from __future__ import annotations

from sqlalchemy import Engine, case, func
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


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


__all__ = ["count_where", "domain_of", "engine_of", "minute_bucket", "week_bucket"]
