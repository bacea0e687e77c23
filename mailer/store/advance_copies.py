"""The record of the editors' advance copies (see :mod:`mailer.advance_copy`): claimed before the mail goes out,
so two overlapping runs cannot both send one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from mailer.domain import DeliveryStatus, utcnow
from mailer.store.models import IssuePreview, table_of

P = table_of(IssuePreview)


def claim(engine: Engine, issue_number: int, address: str, version: str | None = None,
          planned_send_at: datetime | None = None) -> bool:
    """True when this run may send the preview of ``issue_number``; False when one exists."""
    try:
        with engine.begin() as connection:
            connection.execute(insert(P).values(issue_number=issue_number, address=address,
                                                status=DeliveryStatus.SENDING.value, created_at=utcnow(),
                                                content_sha256=version, planned_send_at=planned_send_at))
    except IntegrityError:
        return False
    return True


def claim_correction(engine: Engine, issue_number: int, seen: str, version: str) -> bool:
    """True when this run may mail the correction of a preview that showed version ``seen``:
    one conditional UPDATE, so of two overlapping runs only one sends it."""
    with engine.begin() as connection:
        claimed = connection.execute(update(P).where(
            P.c.issue_number == issue_number, P.c.content_sha256 == seen,
            P.c.status == DeliveryStatus.SENT.value,
        ).values(content_sha256=version, status=DeliveryStatus.SENDING.value)).rowcount
    return claimed == 1


def unclaim_correction(engine: Engine, issue_number: int, seen: str) -> None:
    """The correction could not be sent: the editors still have version ``seen``, and the next
    run tries again."""
    with engine.begin() as connection:
        connection.execute(update(P).where(P.c.issue_number == issue_number).values(
            content_sha256=seen, status=DeliveryStatus.SENT.value))


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


def set_planned(engine: Engine, issue_number: int, moment: datetime | None) -> None:
    """The readers' send moment the latest timer run planned (its --not-before), for the
    preview page, the timeline and a release."""
    with engine.begin() as connection:
        connection.execute(update(P).where(P.c.issue_number == issue_number,
                                           P.c.planned_send_at.is_distinct_from(moment))
                           .values(planned_send_at=moment))
