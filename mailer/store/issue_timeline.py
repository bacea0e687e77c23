"""An issue's hold and its timeline (issue 25 §2): the ``issue_hold`` row that keeps every
`mailer send` from sending it, and the ``issue_event`` rows /admin/issues/N shows with the
campaigns' own start and finish.

A hold is one row per issue (its primary key), so two editors clicking Hold at once hold it
once; a release deletes the row, and only the run that deleted it records "released".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mailer.domain import utcnow
from mailer.store.models import Campaign, IssueEvent, IssueHold, IssuePreview, table_of

H = table_of(IssueHold)
E = table_of(IssueEvent)
C = table_of(Campaign)
P = table_of(IssuePreview)

FOUND, PREVIEW, CORRECTION, HELD, RELEASED = "found", "preview", "correction", "held", "released"


@dataclass(frozen=True)
class Hold:
    issue_number: int
    held_by: str
    held_at: datetime


@dataclass(frozen=True)
class TimelineStep:
    at: datetime
    kind: str  # found, preview, correction, held, released, planned, started, sent
    actor: str | None = None
    detail: str | None = None


# -- the hold ----------------------------------------------------------------------------------

def hold_of(engine: Engine, issue_number: int) -> Hold | None:
    with engine.connect() as connection:
        row = connection.execute(select(H).where(H.c.issue_number == issue_number)).first()
    return Hold(row.issue_number, row.held_by, row.held_at) if row else None


def hold(engine: Engine, issue_number: int, by: str) -> tuple[Hold, bool]:
    """Hold the issue for ``by``; the hold in force and whether this call made it."""
    now = utcnow()
    try:
        with engine.begin() as connection:
            connection.execute(insert(H).values(issue_number=issue_number, held_by=by, held_at=now))
            _record(connection, issue_number, HELD, by, now)
    except IntegrityError:  # held already (by this editor or another)
        current = hold_of(engine, issue_number)
        if current is not None:
            return current, False
        return hold(engine, issue_number, by)  # released in between: hold it now
    return Hold(issue_number, by, now), True


def release(engine: Engine, issue_number: int, by: str) -> Hold | None:
    """Lift the hold; the hold it lifted, or None when the issue was not held."""
    with engine.begin() as connection:
        row = connection.execute(select(H).where(H.c.issue_number == issue_number)).first()
        if row is None:
            return None
        gone = connection.execute(delete(H).where(H.c.issue_number == issue_number)).rowcount
        if not gone:
            return None
        _record(connection, issue_number, RELEASED, by, utcnow(),
                f"held by {row.held_by} since {row.held_at:%Y-%m-%d %H:%M} UTC")
    return Hold(row.issue_number, row.held_by, row.held_at)


# -- the timeline ------------------------------------------------------------------------------

def record(engine: Engine, issue_number: int, kind: str, actor: str | None = None,
           detail: str | None = None) -> None:
    with engine.begin() as connection:
        _record(connection, issue_number, kind, actor, utcnow(), detail)


def record_found_once(engine: Engine, issue_number: int, detail: str | None = None) -> None:
    """The first send run that meets the issue records it as found; later ones add nothing."""
    with engine.begin() as connection:
        seen = connection.execute(select(E.c.id).where(
            E.c.issue_number == issue_number, E.c.kind == FOUND).limit(1)).first()
        if seen is None:
            _record(connection, issue_number, FOUND, None, utcnow(), detail)


def _record(connection: Connection, issue_number: int, kind: str, actor: str | None,
            at: datetime, detail: str | None = None) -> None:
    connection.execute(insert(E).values(issue_number=issue_number, at=at, kind=kind,
                                        actor=actor, detail=detail))


def timeline(engine: Engine, issue_number: int) -> list[TimelineStep]:
    """Every step of the issue so far, oldest first: its events, the planned send moment the
    preview named, and each campaign's start and finish."""
    with engine.connect() as connection:
        events = connection.execute(select(E).where(E.c.issue_number == issue_number)
                                    .order_by(E.c.at, E.c.id)).all()
        preview = connection.execute(select(P.c.planned_send_at).where(
            P.c.issue_number == issue_number)).first()
        campaigns = connection.execute(select(C.c.id, C.c.started_at, C.c.finished_at, C.c.status)
                                       .where(C.c.issue_number == issue_number)
                                       .order_by(C.c.id)).all()
    steps = [TimelineStep(e.at, e.kind, e.actor, e.detail) for e in events]
    if preview is not None and preview.planned_send_at is not None:
        steps.append(TimelineStep(preview.planned_send_at, "planned"))
    for c in campaigns:
        if c.started_at is not None:
            steps.append(TimelineStep(c.started_at, "started", detail=f"campaign {c.id}"))
        if c.finished_at is not None:
            steps.append(TimelineStep(c.finished_at, "sent", detail=f"campaign {c.id}, {c.status}"))
    return sorted(steps, key=lambda step: step.at)


def preview_record(engine: Engine, issue_number: int) -> IssuePreview | None:
    with engine.connect() as connection:
        row = connection.execute(select(P).where(P.c.issue_number == issue_number)).mappings().first()
    return IssuePreview.model_validate(dict(row)) if row else None
