"""Issue 20, item 4: the reputation breaker looks before the first message of every run.

Its periodic check came a few seconds into a run, so a short run (a `--limit` continuation, a
resume, a worker joining) was never checked: a campaign already over a threshold sent on. Here
a campaign's recorded events already cross the hard-bounce or the complaint line; the next run
sends nothing and pauses (exit 3), a worker joining does the same, and `--resume` after the
review sends the rest. In process, on a real SQLite file and the outbox.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.domain import DeliveryStatus, utcnow
from mailer.store.models import Campaign, Delivery
from tests.mailer_cli import outbox
from tests.fakes import add_readers

READERS = [f"reader{n}@example.org" for n in range(10)]
SENT_FIRST = 4

# what the events recorded on two of the first four rows, and the pause they call for
CROSSINGS = {
    "hard bounces": ({"bounce_type": "permanent"},
                     "hard bounces 2 of 4 sent = 50.00 %, at or above 2.50 %"),
    "complaints": ({"complained_at": utcnow()},
                   "complaints 2 of 4 delivered = 50.00 %, at or above 0.05 %"),
}


def cli(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def campaign(engine) -> Campaign:
    with engine.connect() as connection:
        (row,) = connection.execute(select(Campaign.__table__)).mappings().all()
    return Campaign.model_validate(dict(row))


@pytest.fixture
def over_the_line(mailer_env, engine, monkeypatch, request):
    """A campaign of 10 whose first 4 were sent and delivered, 2 of them with bad events."""
    for name, value in {"MAILER_BREAKER_MIN_SENT": "4", "MAILER_BREAKER_MIN_BOUNCES": "2",
                        "MAILER_BREAKER_MIN_DELIVERED": "4",
                        "MAILER_BREAKER_MIN_COMPLAINTS": "2"}.items():
        monkeypatch.setenv(name, value)
    add_readers(engine, *READERS)
    first = cli("send", "--issue", "644", "--yes", "--limit", str(SENT_FIRST))
    assert first.exit_code == 0, first.output
    assert len(outbox(mailer_env)) == SENT_FIRST
    events, reason = CROSSINGS[request.param]
    table = Delivery.__table__
    sent = table.c.status == DeliveryStatus.SENT.value
    with engine.begin() as connection:
        connection.execute(update(table).where(sent).values(delivered_at=utcnow()))
        ids = connection.execute(select(table.c.id).where(sent).order_by(table.c.id)
                                 .limit(2)).scalars().all()
        connection.execute(update(table).where(table.c.id.in_(ids)).values(**events))
    return reason


@pytest.mark.parametrize("over_the_line", list(CROSSINGS), indirect=True)
def test_a_continuation_over_the_line_sends_nothing_and_pauses(over_the_line, mailer_env,
                                                               engine):
    rest = cli("send", "--issue", "644", "--yes")

    assert rest.exit_code == 3, rest.output
    assert f"paused by the reputation breaker: {over_the_line}" in rest.stderr
    assert "mailer send --issue 644 --resume" in rest.stderr
    assert len(outbox(mailer_env)) == SENT_FIRST  # not one more
    paused = campaign(engine)
    assert paused.status == "paused" and paused.pause_reason == over_the_line

    resumed = cli("send", "--issue", "644", "--yes", "--resume")  # after the review
    assert resumed.exit_code == 0, resumed.output
    assert sorted(m["To"] for m in outbox(mailer_env)) == sorted(READERS)


@pytest.mark.parametrize("over_the_line", ["hard bounces"], indirect=True)
def test_a_worker_joining_a_campaign_over_the_line_sends_nothing(over_the_line, mailer_env,
                                                                  engine):
    with engine.begin() as connection:  # as if `mailer send` were going on on another machine
        connection.execute(update(Campaign.__table__).values(status="sending", note=None))

    joined = cli("worker")

    assert joined.exit_code == 3, joined.output
    assert f"paused by the reputation breaker: {over_the_line}" in joined.stderr
    assert len(outbox(mailer_env)) == SENT_FIRST
    assert campaign(engine).status == "paused"
