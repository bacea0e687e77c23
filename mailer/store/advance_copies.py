"""The record of the editors' advance copies (see :mod:`mailer.advance_copy`): claimed before the mail goes out,
so two overlapping runs cannot both send one."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from mailer.domain import DeliveryStatus, utcnow
from mailer.store.models import IssuePreview

P = IssuePreview.__table__


def claim(engine: Engine, issue_number: int, address: str) -> bool:
    """True when this run may send the preview of ``issue_number``; False when one exists."""
    try:
        with engine.begin() as connection:
            connection.execute(insert(P).values(issue_number=issue_number, address=address,
                                                status=DeliveryStatus.SENDING.value, created_at=utcnow()))
    except IntegrityError:
        return False
    return True


def mark_sent(engine: Engine, issue_number: int, provider_message_id: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(update(P).where(P.c.issue_number == issue_number).values(
            status=DeliveryStatus.SENT.value, provider_message_id=provider_message_id,
            sent_at=utcnow()))


def release(engine: Engine, issue_number: int) -> None:
    """The send failed: let a later run try again."""
    with engine.begin() as connection:
        connection.execute(delete(P).where(P.c.issue_number == issue_number))


def get(engine: Engine, issue_number: int) -> IssuePreview | None:
    with engine.connect() as connection:
        row = connection.execute(select(P).where(P.c.issue_number == issue_number)).mappings().first()
    return IssuePreview.model_validate(dict(row)) if row else None
