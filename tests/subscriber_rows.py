"""The subscriber table and a reader's change history, read back after an import."""

from __future__ import annotations

from sqlalchemy import select

from mailer.store.models import Subscriber, SubscriberChange


def subscribers(engine) -> dict[str, Subscriber]:
    with engine.connect() as connection:
        return {row.email: row for row in connection.execute(select(Subscriber.__table__))}


def changes(engine, email: str) -> list:
    with engine.connect() as connection:
        return list(connection.execute(
            select(SubscriberChange.__table__).join(Subscriber.__table__)
            .where(Subscriber.__table__.c.email == email)
            .order_by(SubscriberChange.__table__.c.id)))
