"""The subscriber store on a real database file: SQLite, and PostgreSQL when one is configured.

Every store test takes ``store`` (an engine) and runs once per database.
"""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import func, select, text

from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import (
    InvalidAddress,
    SubscriberError,
    TokenExpired,
    TokenInvalid,
    TokenUsed,
    UnknownSubscriber,
)
from mailer.store import subscribers as subs
from mailer.subscriptions import workflow
from mailer.reads.subscriber_figures import subscribers_by_status
from mailer.store.db import get_engine, reset_engines, session
from mailer.store.models import (
    Campaign,
    Delivery,
    DeliveryEventRecord,
    ForgottenAddress,
    Subscriber,
    SubscriberChange,
)
from mailer.tokens import make_confirm_token, make_unsubscribe_token

SECRET = "store-test-secret-0123456789abcdef"
MAX_AGE = 7 * 24 * 3600


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'subscribers.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    yield get_engine(url)
    reset_engines()


@pytest.fixture
def db(store):
    with session(store) as s:
        yield s


def changes_of(db, subscriber) -> list[SubscriberChange]:
    return list(db.execute(select(SubscriberChange)
                           .where(SubscriberChange.subscriber_id == subscriber.id)
                           .order_by(SubscriberChange.id)).scalars())


def subscriber_count(db) -> int:
    return db.execute(select(func.count()).select_from(Subscriber)).scalar_one()


def fresh_row(store, subscriber_id) -> Subscriber:
    with session(store) as other:
        return other.get(Subscriber, subscriber_id)


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("  reader@Example.ORG \t", "reader@example.org"),
    ("Ann.Lee@example.org", "Ann.Lee@example.org"),  # the local part keeps its case
    ("leser@Bücher.example", "leser@xn--bcher-kva.example"),
    ("leser@xn--bcher-kva.example", "leser@xn--bcher-kva.example"),
])
def test_addresses_are_normalised(raw, expected):
    assert subs.normalise_address(raw) == expected


@pytest.mark.parametrize("raw, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("reader@example.org\r\nBcc: victim@example.org", "line break"),
    ("reader@example.org\n", "line break"),
    ("reader\x00@example.org", "control character"),
    ("no-at-sign.example.org", "not a valid"),
    ("two@@example.org", "not a valid"),
    ("reader@localhost", "not a valid"),
    ("jörg@example.org", "not a valid"),  # SES needs an ASCII local part
    ("a" * 250 + "@example.org", "longer than 254"),
    ("x" * 100_000, "longer than 254"),
])
def test_bad_addresses_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidAddress, match=reason):
        subs.normalise_address(raw)


@given(st.text(max_size=300) | st.emails().map(lambda e: f" {e.upper()} "))
@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_normalise_address_raises_only_invalid_address_and_is_idempotent(raw):
    try:
        once = subs.normalise_address(raw)
    except InvalidAddress:
        return
    assert subs.normalise_address(once) == once
    assert len(once) <= 254 and "\n" not in once and "\r" not in once


ADDRESS_LIKE = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.text(alphabet="abcXYZ09.+-_'=!#~`{}|\"@ ", min_size=0, max_size=70),
    st.sampled_from(["example.org", "EXAMPLE.org", "bücher.example", "xn--bcher-kva.example",
                     "localhost", "-bad.example", "a..b.example", "ex ample.org", "1.2.3.4",
                     "x" * 64 + ".example"]),
)


@given(ADDRESS_LIKE | st.emails() | st.text(max_size=80))
@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_fast_path_answers_exactly_as_email_validator(raw):
    def answer(validate):
        try:
            return validate(raw.strip(" \t"), False)
        except InvalidAddress:
            return "invalid"

    if "\r" in raw or "\n" in raw or not raw.strip(" \t"):
        return
    assert answer(subs._validated_ascii_address) == answer(subs._validated_by_email_validator)


# -- double opt-in -----------------------------------------------------------------------------


def test_sign_up_is_pending_until_the_link_is_confirmed(store, db):
    outcome = workflow.request_subscription(db, " Reader@Example.org ", secret=SECRET, ip="192.0.2.1")
    assert outcome.confirm_token
    row = fresh_row(store, outcome.subscriber.id)
    assert (row.email, row.status, row.signup_ip, row.source) == (
        "Reader@example.org", SubscriberStatus.PENDING, "192.0.2.1", "web")

    # The GET page validates only: a mail scanner following the link confirms nothing.
    assert workflow.check_confirm_token(db, outcome.confirm_token, secret=SECRET,
                                    max_age=MAX_AGE).id == row.id
    assert fresh_row(store, row.id).status == SubscriberStatus.PENDING

    confirmed = workflow.confirm_subscription(db, outcome.confirm_token, secret=SECRET,
                                          max_age=MAX_AGE, ip="198.51.100.7")
    row = fresh_row(store, confirmed.id)
    assert row.status == SubscriberStatus.ACTIVE and row.confirmed_at is not None
    assert row.confirm_ip == "198.51.100.7" and row.confirm_nonce is None

    created, activated = changes_of(db, row)
    assert (created.from_status, created.to_status, created.source) == (
        None, SubscriberStatus.PENDING, "web")
    assert json.loads(created.detail) == {"ip": "192.0.2.1"}
    consent = json.loads(activated.detail)
    assert activated.to_status == SubscriberStatus.ACTIVE
    assert consent["ip"] == "198.51.100.7" and consent["signup_ip"] == "192.0.2.1"
    assert consent["confirm_sent_at"] and len(consent["confirmation"]) == 16


def test_a_confirm_link_works_once(db):
    token = workflow.request_subscription(db, "once@example.org", secret=SECRET).confirm_token
    workflow.confirm_subscription(db, token, secret=SECRET, max_age=MAX_AGE)
    with pytest.raises(TokenUsed):
        workflow.confirm_subscription(db, token, secret=SECRET, max_age=MAX_AGE)
    with pytest.raises(TokenUsed):
        workflow.check_confirm_token(db, token, secret=SECRET, max_age=MAX_AGE)


def test_two_simultaneous_clicks_confirm_once(store, db):
    token = workflow.request_subscription(db, "race@example.org", secret=SECRET).confirm_token
    results: list[str] = []
    barrier = threading.Barrier(4)

    def click() -> None:
        with session(store) as own:
            barrier.wait()
            try:
                workflow.confirm_subscription(own, token, secret=SECRET, max_age=MAX_AGE)
                results.append("confirmed")
            except TokenUsed:
                results.append("used")

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["confirmed", "used", "used", "used"]
    activations = db.execute(select(func.count()).select_from(SubscriberChange).where(
        SubscriberChange.to_status == SubscriberStatus.ACTIVE)).scalar_one()
    assert activations == 1


def test_forged_truncated_and_foreign_confirm_tokens_change_nothing(store, db):
    outcome = workflow.request_subscription(db, "target@example.org", secret=SECRET)
    token = outcome.confirm_token
    forged = [token[:-3], token + "x", make_confirm_token("another-secret-0123456789", outcome.subscriber.id, "nonce"),
              make_confirm_token(SECRET, outcome.subscriber.id, "guessed-nonce"),
              make_confirm_token(SECRET, 999_999, "nonce"), ""]
    for bad in forged:
        with pytest.raises(TokenInvalid):
            workflow.confirm_subscription(db, bad, secret=SECRET, max_age=MAX_AGE)
    assert fresh_row(store, outcome.subscriber.id).status == SubscriberStatus.PENDING


def test_an_expired_confirm_link_is_refused(store, db, monkeypatch):
    from itsdangerous import TimestampSigner

    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 8 * 24 * 3600)
    outcome = workflow.request_subscription(db, "late@example.org", secret=SECRET)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    with pytest.raises(TokenExpired):
        workflow.confirm_subscription(db, outcome.confirm_token, secret=SECRET, max_age=MAX_AGE)
    assert fresh_row(store, outcome.subscriber.id).status == SubscriberStatus.PENDING


def test_repeated_sign_ups_mail_at_most_once_per_interval(db):
    first = workflow.request_subscription(db, "again@example.org", secret=SECRET)
    assert workflow.request_subscription(db, "again@example.org", secret=SECRET).confirm_token is None
    # Once the interval has passed a new link goes out and the old one stops working.
    second = workflow.request_subscription(db, "AGAIN@example.org", secret=SECRET, min_interval=0)
    assert second.confirm_token and second.subscriber.id == first.subscriber.id
    with pytest.raises(TokenInvalid, match="newer"):
        workflow.confirm_subscription(db, first.confirm_token, secret=SECRET, max_age=MAX_AGE)
    workflow.confirm_subscription(db, second.confirm_token, secret=SECRET, max_age=MAX_AGE)
    assert subscriber_count(db) == 1


@pytest.mark.parametrize("status", [SubscriberStatus.ACTIVE, SubscriberStatus.BOUNCED,
                                    SubscriberStatus.COMPLAINED])
def test_sign_up_of_a_reader_or_a_suppressed_address_sends_nothing(store, db, status):
    subscriber, _ = workflow.add_subscriber(db, "known@example.org", confirmed=True, secret=SECRET)
    subs.change_status(db, subscriber, status, source="ses-test")
    outcome = workflow.request_subscription(db, "known@example.org", secret=SECRET, min_interval=0)
    assert outcome.confirm_token is None
    assert fresh_row(store, subscriber.id).status == status


def test_resubscribing_after_unsubscribe_needs_a_new_confirmation(store, db):
    subscriber, _ = workflow.add_subscriber(db, "back@example.org", confirmed=True, secret=SECRET)
    unsubscribe = make_unsubscribe_token(SECRET, subscriber.id)
    workflow.unsubscribe_with_token(db, unsubscribe, secret=SECRET, source="one-click")
    workflow.unsubscribe_with_token(db, unsubscribe, secret=SECRET, source="one-click")  # idempotent
    assert fresh_row(store, subscriber.id).status == SubscriberStatus.UNSUBSCRIBED

    outcome = workflow.request_subscription(db, "back@example.org", secret=SECRET, min_interval=0)
    assert outcome.confirm_token
    assert fresh_row(store, subscriber.id).status == SubscriberStatus.PENDING
    workflow.confirm_subscription(db, outcome.confirm_token, secret=SECRET, max_age=MAX_AGE)
    assert [c.to_status for c in changes_of(db, subscriber)] == [
        "active", "unsubscribed", "pending", "active"]
    assert [c.source for c in changes_of(db, subscriber)][:2] == ["cli", "one-click"]


def test_a_complaint_holds_against_everything_but_an_operator(store, db):
    subscriber, _ = workflow.add_subscriber(db, "angry@example.org", confirmed=True, secret=SECRET)
    assert subs.change_status(db, subscriber, SubscriberStatus.COMPLAINED, source="ses-complaint",
                              detail={"feedback": "abuse"})
    for to in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED,
               SubscriberStatus.BOUNCED):
        assert not subs.change_status(db, subscriber, to, source="web")
    workflow.unsubscribe_with_token(db, make_unsubscribe_token(SECRET, subscriber.id), secret=SECRET)
    assert fresh_row(store, subscriber.id).status == SubscriberStatus.COMPLAINED
    assert subs.change_status(db, subscriber, SubscriberStatus.ACTIVE, source="cli")
    assert fresh_row(store, subscriber.id).status == SubscriberStatus.ACTIVE


def test_a_change_to_the_same_status_records_nothing(db):
    subscriber, _ = workflow.add_subscriber(db, "same@example.org", confirmed=True, secret=SECRET)
    assert not subs.change_status(db, subscriber, SubscriberStatus.ACTIVE, source="cli")
    assert len(changes_of(db, subscriber)) == 1


def test_an_invalid_address_changes_nothing(db):
    for raw in ("bad@@example.org", "a@example.org\r\nBcc: b@example.org", "x" * 1000):
        with pytest.raises(InvalidAddress):
            workflow.request_subscription(db, raw, secret=SECRET)
        with pytest.raises(InvalidAddress):
            workflow.add_subscriber(db, raw, secret=SECRET)
    assert subscriber_count(db) == 0
    assert subs.get_by_email(db, "bad@@example.org") is None


# -- one row per address ------------------------------------------------------------------------


def test_one_row_per_address_whatever_its_case(db):
    first, created = workflow.add_subscriber(db, "Ann@Example.org", confirmed=True, secret=SECRET)
    again, created_again = workflow.add_subscriber(db, "ann@EXAMPLE.ORG", secret=SECRET)
    assert created == "added" and created_again == "existing" and again.id == first.id
    assert workflow.request_subscription(db, "ANN@example.org", secret=SECRET).subscriber.id == first.id
    assert subs.get_by_email(db, "aNN@example.org").id == first.id
    assert subscriber_count(db) == 1


def test_add_confirmed_activates_a_pending_row(store, db):
    pending = workflow.request_subscription(db, "wait@example.org", secret=SECRET).subscriber
    row, created = workflow.add_subscriber(db, "wait@example.org", confirmed=True, secret=SECRET)
    assert created == "confirmed" and fresh_row(store, pending.id).status == SubscriberStatus.ACTIVE


def test_remove_unsubscribes_and_needs_a_known_address(store, db):
    subscriber, _ = workflow.add_subscriber(db, "leave@example.org", confirmed=True, secret=SECRET)
    workflow.remove_subscriber(db, "Leave@Example.org")
    assert fresh_row(store, subscriber.id).status == SubscriberStatus.UNSUBSCRIBED
    with pytest.raises(UnknownSubscriber):
        workflow.remove_subscriber(db, "stranger@example.org")


def test_subscribers_by_status_lists_every_status(db):
    workflow.add_subscriber(db, "a@example.org", confirmed=True, secret=SECRET)
    workflow.add_subscriber(db, "b@example.org", confirmed=True, secret=SECRET)
    workflow.add_subscriber(db, "c@example.org", secret=SECRET)
    assert subscribers_by_status(db) == {"pending": 1, "active": 2, "unsubscribed": 0,
                                   "bounced": 0, "complained": 0}


# -- forget ------------------------------------------------------------------------------------


def _delivered(db, subscriber) -> None:
    campaign = Campaign(issue_number=644, subject="TWiR 644", transport="outbox",
                        content_sha256="0" * 64)
    db.add(campaign)
    db.flush()
    delivery = Delivery(campaign_id=campaign.id, subscriber_id=subscriber.id,
                        email=subscriber.email, status="sent")
    db.add(delivery)
    db.flush()
    db.add(DeliveryEventRecord(event_key="m1-bounce", kind="bounce", recipient=subscriber.email,
                               occurred_at=utcnow(), delivery_id=delivery.id,
                               diagnostic=f"550 {subscriber.email} unknown",
                               raw=json.dumps({"to": subscriber.email})))
    db.commit()


def test_forget_erases_the_person_and_keeps_only_a_hash(store, db, tmp_path):
    subscriber, _ = workflow.add_subscriber(db, "gone@example.org", confirmed=True, secret=SECRET)
    _delivered(db, subscriber)
    subs.forget_subscriber(db, "Gone@example.org", secret=SECRET)

    assert subs.get_by_email(db, "gone@example.org") is None
    with store.connect() as connection:
        for table in ("subscriber", "subscriber_change", "delivery", "delivery_event"):
            dump = " ".join(str(row) for row in connection.execute(text(f"SELECT * FROM {table}")))
            assert "gone@" not in dump.lower(), table
        # the event stays for the statistics, without the person
        assert connection.execute(text("SELECT kind, recipient FROM delivery_event")).all() == [
            ("bounce", "(forgotten)")]
        hashes = connection.execute(text("SELECT address_hash FROM forgotten_address")).scalars().all()
    assert len(hashes) == 1 and "gone" not in hashes[0]

    # never re-imported or re-added by accident
    with pytest.raises(SubscriberError, match="forgotten"):
        workflow.add_subscriber(db, "gone@example.org", secret=SECRET)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email\nGONE@example.org\nnew@example.org\n")
    report = subs.import_csv(store, csv_file, secret=SECRET)
    assert report.added == 1 and report.forgotten == [(2, "GONE@example.org")]
    assert subs.get_by_email(db, "gone@example.org") is None

    # ... but they may come back by asking, which puts them through double opt-in again
    row, created = workflow.add_subscriber(db, "gone@example.org", secret=SECRET, allow_forgotten=True)
    assert created == "added" and row.status == SubscriberStatus.PENDING
    assert db.execute(select(func.count()).select_from(ForgottenAddress)).scalar_one() == 0


def test_a_sign_up_of_a_forgotten_address_stores_and_mails_nothing(store, db):
    subs.forget_subscriber(db, "returns@example.org", secret=SECRET)  # never subscribed: kept too
    outcome = workflow.request_subscription(db, "returns@example.org", secret=SECRET)
    assert outcome.confirm_token is None and outcome.subscriber is None
    assert subs.get_by_email(db, "returns@example.org") is None
    # the way back is the operator's, who heard it from them: a new double opt-in
    row, _ = workflow.add_subscriber(db, "returns@example.org", secret=SECRET, allow_forgotten=True)
    assert row.status == SubscriberStatus.PENDING
    assert db.execute(select(func.count()).select_from(ForgottenAddress)).scalar_one() == 0


def test_an_old_unsubscribe_link_never_reaches_a_newcomer(store, db):
    workflow.add_subscriber(db, "first@example.org", confirmed=True, secret=SECRET)
    last, _ = workflow.add_subscriber(db, "last@example.org", confirmed=True, secret=SECRET)
    old_link = make_unsubscribe_token(SECRET, last.id)
    subs.forget_subscriber(db, "last@example.org", secret=SECRET)
    newcomer, _ = workflow.add_subscriber(db, "newcomer@example.org", confirmed=True, secret=SECRET)
    assert newcomer.id != last.id
    with pytest.raises(TokenInvalid):
        workflow.unsubscribe_with_token(db, old_link, secret=SECRET)
    assert fresh_row(store, newcomer.id).status == SubscriberStatus.ACTIVE


# -- import and export -------------------------------------------------------------------------


def test_import_reports_every_row_and_keeps_other_columns(store, db, tmp_path):
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(
        "Name,EMAIL,city\n"
        "Ann,ann@example.org,Oslo\n"
        "Bob,bob@,Lima\n"
        "\n"
        'Cid,"cid@example.org",\n'
        "Ann again,ANN@example.org,Oslo\n"
        'Dee,"dee@example.org\r\nBcc: x@example.org",Rome\n'  # one record, two lines
        "Eve,eve@example.org,Kyiv,extra-cell\n",
        encoding="utf-8",
    )
    report = subs.import_csv(store, csv_file, confirmed=True, secret=SECRET)
    assert (report.added, report.existing, report.duplicates) == (3, 0, 1)
    assert [line for line, _ in report.invalid] == [3, 7]  # where each record starts
    assert "bob@" in report.invalid[0][1]

    ann = subs.get_by_email(db, "ann@example.org")
    assert ann.status == SubscriberStatus.ACTIVE and ann.source == "import"
    assert json.loads(ann.attrs) == {"city": "Oslo", "name": "Ann"}
    assert json.loads(subs.get_by_email(db, "eve@example.org").attrs)["column_4"] == "extra-cell"
    detail = json.loads(changes_of(db, ann)[0].detail)
    assert detail == {"file": "readers.csv", "line": 2}

    again = subs.import_csv(store, csv_file, confirmed=True, secret=SECRET)
    assert (again.added, again.existing) == (0, 3)
    assert subscriber_count(db) == 3


def test_import_leaves_existing_subscribers_as_they_are(store, db, tmp_path):
    subscriber, _ = workflow.add_subscriber(db, "left@example.org", confirmed=True, secret=SECRET)
    workflow.remove_subscriber(db, "left@example.org")
    csv_file = tmp_path / "old.csv"
    csv_file.write_text("email\nLEFT@example.org\n")
    report = subs.import_csv(store, csv_file, confirmed=True, secret=SECRET)
    assert (report.added, report.existing) == (0, 1)
    assert fresh_row(store, subscriber.id).status == SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize("content, message", [
    ("name,mail\nAnn,ann@example.org\n", "no 'email' column"),
    ("", "empty"),
])
def test_an_import_without_an_email_column_changes_nothing(store, db, tmp_path, content, message):
    csv_file = tmp_path / "wrong.csv"
    csv_file.write_text(content)
    with pytest.raises(SubscriberError, match=message):
        subs.import_csv(store, csv_file, secret=SECRET)
    with pytest.raises(SubscriberError, match="cannot read"):
        subs.import_csv(store, tmp_path / "missing.csv", secret=SECRET)
    assert subscriber_count(db) == 0


def test_import_survives_bytes_that_are_not_utf8(store, db, tmp_path):
    csv_file = tmp_path / "latin1.csv"
    csv_file.write_bytes(b"email,name\nj\xf6rg@example.org,J\xf6rg\nok@example.org,Ok\n")
    report = subs.import_csv(store, csv_file, secret=SECRET)
    assert report.added == 1 and [line for line, _ in report.invalid] == [2]


def test_export_streams_everyone_or_one_status(store, db, tmp_path):
    csv_file = tmp_path / "many.csv"
    csv_file.write_text("email\n" + "".join(f"r{n}@example.org\n" for n in range(2_500)))
    subs.import_csv(store, csv_file, confirmed=True, secret=SECRET)
    workflow.remove_subscriber(db, "r7@example.org")
    everyone = list(subs.export_subscribers(db))
    assert len(everyone) == 2_500 and len({row["email"] for row in everyone}) == 2_500
    assert {"email", "status", "created_at", "confirmed_at", "source", "attrs"} <= set(everyone[0])
    gone = list(subs.export_subscribers(db, status=SubscriberStatus.UNSUBSCRIBED))
    assert [(row["email"], row["status"]) for row in gone] == [("r7@example.org", "unsubscribed")]

