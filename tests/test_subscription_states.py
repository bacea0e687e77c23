"""The opt-in workflow's one table (mailer.subscription_states): every move it allows, a sample
of those it refuses, and each caller refusing what the table refuses (the table is patched to
refuse a move the caller would otherwise make, so a caller with a rule of its own fails)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from mailer import subscription_states as states
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import AddressChangeRefused, BadPause, TokenUsed, TransitionRefused
from mailer.subscription_states import ERASED, TRANSITIONS, Event, allows, require
from mailer.suppression import may_change

P, A, U, B, C = (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE,
                 SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED,
                 SubscriberStatus.COMPLAINED)
OPERATOR = "cli"

# Written out here, not derived from the module: a changed table fails this list.
ALLOWED = [
    (Event.REQUEST, P, P), (Event.REQUEST, U, P),
    (Event.CONFIRM, P, A),
    (Event.UNSUBSCRIBE, P, U), (Event.UNSUBSCRIBE, A, U),
    (Event.BOUNCE, P, B), (Event.BOUNCE, A, B), (Event.BOUNCE, U, B),
    (Event.COMPLAINT, P, C), (Event.COMPLAINT, A, C), (Event.COMPLAINT, U, C),
    (Event.COMPLAINT, B, C),
    (Event.RESTORE, A, P), (Event.RESTORE, U, A), (Event.RESTORE, B, P), (Event.RESTORE, B, A),
    (Event.RESTORE, B, U), (Event.RESTORE, C, P), (Event.RESTORE, C, A), (Event.RESTORE, C, U),
    (Event.RESTORE, C, B),
    (Event.PAUSE, A, A), (Event.CHANGE_ADDRESS, A, A),
    *[(Event.FORGET, status, ERASED) for status in SubscriberStatus],
]


@pytest.mark.parametrize(("event", "current", "to"), ALLOWED)
def test_every_move_of_the_table_is_allowed_to_an_operator(event, current, to):
    assert allows(current, to, event, source=OPERATOR)
    require(current, to, event, source=OPERATOR)  # raises nothing


def test_the_table_is_exactly_those_moves():
    assert {(e, f, t) for e, pairs in TRANSITIONS.items() for f, t in pairs} == set(ALLOWED)


@pytest.mark.parametrize(("event", "current", "to"), [
    (Event.REQUEST, A, P), (Event.REQUEST, B, P), (Event.REQUEST, C, P),  # no mail, no change
    (Event.CONFIRM, U, A), (Event.CONFIRM, B, A), (Event.CONFIRM, C, A), (Event.CONFIRM, A, A),
    (Event.UNSUBSCRIBE, U, U), (Event.UNSUBSCRIBE, B, U), (Event.UNSUBSCRIBE, C, U),
    (Event.BOUNCE, C, B), (Event.BOUNCE, B, B), (Event.COMPLAINT, C, C),
    (Event.PAUSE, P, P), (Event.PAUSE, U, U), (Event.PAUSE, B, B),
    (Event.CHANGE_ADDRESS, P, P), (Event.CHANGE_ADDRESS, C, C),
    (Event.RESTORE, P, A), (Event.FORGET, A, A),
])
def test_moves_outside_the_table_are_refused_even_to_an_operator(event, current, to):
    assert not allows(current, to, event, source=OPERATOR)
    with pytest.raises(TransitionRefused, match=f"cannot become .* by {event.value}"):
        require(current, to, event, source=OPERATOR)


def test_a_move_of_the_table_still_needs_a_source_that_may_make_it():
    assert not allows(C, A, Event.RESTORE, source="web")  # nobody but an operator lifts it
    assert not allows(B, A, Event.RESTORE, source="ses-bounce")
    assert allows(A, U, Event.UNSUBSCRIBE, source="mailchimp")  # the move tightens: it may
    assert not allows(B, U, Event.RESTORE, source="mailchimp")
    with pytest.raises(TransitionRefused, match="the reason given"):
        require(C, A, Event.RESTORE, source="admin-but-not", refusal="the reason given")


def test_moves_that_keep_the_status_or_end_the_row_lift_nothing_so_anyone_may():
    assert allows(P, P, Event.REQUEST, source="web")
    assert allows(A, A, Event.PAUSE, source="manage-pause")
    assert allows(C, ERASED, Event.FORGET, source="web")


def test_without_an_event_the_answer_is_who_may_change_the_status():
    # every move between two statuses is under one event, so this is mailer.suppression's rule
    pairs = [(f, t) for f in SubscriberStatus for t in SubscriberStatus if f is not t]
    assert sorted(p for e, pairs_ in TRANSITIONS.items() if e is not Event.FORGET
                  for p in pairs_ if p[0] is not p[1]) == sorted(pairs)
    for source in ("web", "one-click", "import", "cli", "admin", "ses-bounce", "ses-complaint",
                   "ses-subscription", "mailchimp"):
        for current, to in pairs:
            assert allows(current, to, source=source) is may_change(current, to, source=source)


def test_bulk_updates_match_the_statuses_the_table_allows():
    assert states.from_states(A, Event.CONFIRM, source="import") == [P]
    assert states.from_states(B, Event.BOUNCE, source="ses-bounce") == [P, A, U]


# -- every caller asks the table -----------------------------------------------------------------


def refuse(monkeypatch, event: Event, *pairs) -> None:
    """The table without ``pairs`` under ``event``: what a caller then does shows it asked."""
    monkeypatch.setitem(TRANSITIONS, event, TRANSITIONS[event] - set(pairs))


SECRET_MAX_AGE = 7 * 24 * 3600


@pytest.fixture
def db(engine):
    from mailer.store.db import session

    with session(engine) as s:
        yield s


def status_of(engine, subscriber_id: int) -> SubscriberStatus:
    from mailer.store.db import session
    from mailer.store.models import Subscriber

    with session(engine) as s:
        return SubscriberStatus(s.get(Subscriber, subscriber_id).status)


def reader(db, settings, email: str, status: SubscriberStatus = A):
    from mailer.store import subscribers
    from mailer.subscriptions import workflow

    row, _ = workflow.add_subscriber(db, email, confirmed=True, secret=settings.secret_key)
    if status is not A:
        assert subscribers.change_status(db, row, status, source=OPERATOR)
    return row


def test_the_store_writes_no_move_the_table_refuses(monkeypatch, db, settings, engine):
    from mailer.store import subscribers

    row = reader(db, settings, "store@example.org")
    refuse(monkeypatch, Event.BOUNCE, (A, B))
    assert not subscribers.change_status(db, row, B, event=Event.BOUNCE, source=OPERATOR)
    assert not subscribers.change_status(db, row, B, source=OPERATOR)  # under no event now
    assert status_of(engine, row.id) is A


def test_a_request_asks_the_table(monkeypatch, db, settings, engine):
    from mailer.subscriptions import workflow

    row = reader(db, settings, "again@example.org", U)
    refuse(monkeypatch, Event.REQUEST, (U, P))
    outcome = workflow.request_subscription(db, "again@example.org", secret=settings.secret_key,
                                            min_interval=0)
    assert outcome.confirm_token is None and status_of(engine, row.id) is U


def test_a_confirmation_link_asks_the_table(monkeypatch, db, settings, engine):
    from mailer.subscriptions import workflow

    outcome = workflow.request_subscription(db, "new@example.org", secret=settings.secret_key)
    refuse(monkeypatch, Event.CONFIRM, (P, A))
    with pytest.raises(TokenUsed):
        workflow.confirm_subscription(db, outcome.confirm_token, secret=settings.secret_key,
                                      max_age=SECRET_MAX_AGE)
    assert status_of(engine, outcome.subscriber.id) is P


def test_an_unsubscribe_link_and_remove_ask_the_table(monkeypatch, db, settings, engine):
    from mailer.subscriptions import workflow
    from mailer.tokens import make_unsubscribe_token

    row = reader(db, settings, "stays@example.org")
    refuse(monkeypatch, Event.UNSUBSCRIBE, (A, U))
    workflow.unsubscribe_with_token(db, make_unsubscribe_token(settings.secret_key, row.id),
                                    secret=settings.secret_key)
    workflow.remove_subscriber(db, "stays@example.org")
    assert status_of(engine, row.id) is A


def test_add_confirmed_asks_the_table(monkeypatch, db, settings, engine):
    from mailer.subscriptions import workflow

    pending, _ = workflow.add_subscriber(db, "wait@example.org", secret=settings.secret_key)
    refuse(monkeypatch, Event.CONFIRM, (P, A))
    _, outcome = workflow.add_subscriber(db, "wait@example.org", confirmed=True,
                                         secret=settings.secret_key)
    assert outcome == "existing" and status_of(engine, pending.id) is P


def test_the_csv_import_asks_the_table(monkeypatch, db, settings, engine, tmp_path):
    from mailer.store.subscriber_files import import_csv
    from mailer.subscriptions import workflow

    pending, _ = workflow.add_subscriber(db, "csv@example.org", secret=settings.secret_key)
    refuse(monkeypatch, Event.CONFIRM, (P, A))
    path = tmp_path / "list.csv"
    path.write_text("email\ncsv@example.org\n")
    import_csv(engine, path, confirmed=True, secret=settings.secret_key)
    assert status_of(engine, pending.id) is P


def test_ses_events_ask_the_table(monkeypatch, db, settings, engine):
    from mailer.events.apply import ingest_events
    from mailer.events.ses import parse_notification
    from tests.event_support import retarget, twin

    row = reader(db, settings, "evidence@example.net")
    refuse(monkeypatch, Event.BOUNCE, (A, B))
    result = ingest_events(engine, parse_notification(
        retarget(twin("event-bounce"), "evidence@example.net", None)), settings)
    assert result.recorded == {"bounce": 1} and result.suppressed == []
    assert status_of(engine, row.id) is A


def test_the_mailchimp_import_asks_the_table(monkeypatch, db, settings, engine, tmp_path):
    from mailer.cli import app
    from tests.mailchimp_export import csv_bytes, file_name, member, write_dir

    row = reader(db, settings, "cleaned@example.org")
    refuse(monkeypatch, Event.BOUNCE, (A, B))
    export = write_dir(tmp_path / "audience", {file_name("cleaned"): csv_bytes(
        "cleaned", [member(1, email="cleaned@example.org")])})
    result = CliRunner().invoke(app, ["subscribers", "import-mailchimp", str(export)])
    assert result.exit_code == 0, result.output
    assert status_of(engine, row.id) is A


def test_the_consoles_actions_ask_the_table(monkeypatch, db, settings, engine):
    from mailer import reader_actions
    from mailer.reads.reader_records import reader_record

    row = reader(db, settings, "console@example.org")
    assert "unsubscribe" in reader_actions.allowed_actions(reader_record(db, row.id))
    refuse(monkeypatch, Event.UNSUBSCRIBE, (A, U))
    assert reader_actions.allowed_actions(reader_record(db, row.id)) == ["forget"]
    with pytest.raises(TransitionRefused, match="nothing to unsubscribe"):
        reader_actions.perform_action(db, row.id, "unsubscribe", reason="asked by mail",
                                      operator="op", secret=settings.secret_key)
    assert status_of(engine, row.id) is A


def test_the_readers_pause_asks_the_table(monkeypatch, db, settings, engine):
    from mailer import subscriptions
    from mailer.tokens import make_manage_token

    row = reader(db, settings, "pause@example.org")
    refuse(monkeypatch, Event.PAUSE, (A, A))
    with pytest.raises(BadPause):
        subscriptions.pause_reader(engine, settings, make_manage_token(settings.secret_key, row.id),
                                   utcnow().date() + timedelta(days=7))


def test_a_change_of_address_asks_the_table(monkeypatch, db, settings, engine):
    from mailer import subscriptions
    from mailer.tokens import make_manage_token

    row = reader(db, settings, "old@example.org")
    refuse(monkeypatch, Event.CHANGE_ADDRESS, (A, A))
    with pytest.raises(AddressChangeRefused):
        subscriptions.request_address_change(
            engine, settings, make_manage_token(settings.secret_key, row.id), "new@example.org")
