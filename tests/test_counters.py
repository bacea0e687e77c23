"""The figures kept on write (issue 23 §1) equal a full recount after any mix of writes.

Each seed plays a small random history through the real write paths: readers added, confirmed
and imported, campaigns begun and sent through the ledger's claim / send / record steps (the
dispatcher's), a worker that dies between its claim and its record (its rows become unknown,
then are settled and sent again), SES events applied by the event-application use case,
unsubscribes and forgets. After it, every counter `mailer stats`, `subscribers count` and the
console read equals what counting the rows gives, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from mailer.events.apply import ingest_events
from mailer.events.ses import parse_notification
from mailer.store import ledger
from mailer.reads.counters import counted_figures, differences, stored_figures
from mailer.store.db import get_engine, session
from mailer.store.subscriber_files import import_csv
from mailer.store.subscribers import forget_subscriber
from mailer.subscriptions.workflow import add_subscriber, remove_subscriber
from tests.conftest import TEST_SECRET
from tests.fakes import add_reader_rows
from tests.mailer_cli import mailer
from tests.event_support import retarget, twin

SEEDS = range(30)


def mismatches(engine) -> list:
    with session(engine) as db:
        return differences(stored_figures(db), counted_figures(db))


class History:
    """One seed's random history, written through the use cases and store functions."""

    def __init__(self, engine, settings, seed: int, tmp_path) -> None:
        self.engine, self.settings, self.tmp_path = engine, settings, tmp_path
        self.seed, self.rng = seed, random.Random(seed)
        self.addresses: list[str] = []
        self.sent: list[tuple[int, int, str, str]] = []  # delivery, campaign, email, message id
        self.serial = 0

    def address(self) -> str:
        self.serial += 1
        domain = self.rng.choice(["example.org", "gmail.com", "Example.NET",
                                  "simulator.amazonses.com"])
        email = f"s{self.seed}r{self.serial}@{domain}"
        self.addresses.append(email)
        return email

    def add(self) -> None:
        with session(self.engine) as db:
            add_subscriber(db, self.address(), confirmed=self.rng.random() < 0.7,
                           secret=TEST_SECRET)

    def confirm_someone(self) -> None:
        if self.addresses:
            with session(self.engine) as db:
                add_subscriber(db, self.rng.choice(self.addresses), confirmed=True,
                               secret=TEST_SECRET, allow_forgotten=True)

    def import_file(self) -> None:
        fresh = [self.address() for _ in range(self.rng.randint(1, 4))]
        again = self.rng.sample(self.addresses, min(2, len(self.addresses)))
        path = self.tmp_path / f"import-{self.seed}-{self.serial}.csv"
        path.write_text("email\n" + "\n".join(fresh + again) + "\n")
        import_csv(self.engine, path, confirmed=self.rng.random() < 0.8, secret=TEST_SECRET)

    def unsubscribe(self) -> None:
        if self.addresses:
            with session(self.engine) as db:
                remove_subscriber(db, self.rng.choice(self.addresses))
                db.commit()

    def forget(self) -> None:
        if self.addresses:
            email = self.rng.choice(self.addresses)
            self.addresses.remove(email)
            self.sent = [row for row in self.sent if row[2] != email]
            with session(self.engine) as db:
                forget_subscriber(db, email, secret=TEST_SECRET)
                db.commit()

    def send(self, issue: int) -> None:
        """A campaign: a worker dies between claim and record, a second one finishes it."""
        campaign = ledger.begin_campaign(self.engine, issue_number=issue, subject=f"TWiR {issue}",
                                         transport="outbox", content_sha256="0" * 64).campaign
        self.serial += 1
        dead, alive = f"dead-{self.seed}-{self.serial}", f"alive-{self.seed}-{self.serial}"
        ledger.register_worker(self.engine, dead, campaign.id, 10)
        for row in ledger.claim_batch(self.engine, campaign.id, dead, self.rng.randint(0, 6)):
            roll = self.rng.random()
            if roll < 0.3:
                continue  # claimed, never started: goes back to the queue
            if ledger.start_sending(self.engine, row.id, dead) is None:
                continue
            if roll < 0.6:
                continue  # in flight when the worker was killed: unknown
            self._record(campaign.id, row, dead)
        ledger.recover_abandoned(self.engine, campaign.id, is_dead=lambda worker: worker == dead)
        if self.rng.random() < 0.5:
            ledger.settle_unknown(self.engine, campaign.id, timedelta(0))
        if self.rng.random() < 0.3:
            self.unsubscribe()  # a reader leaves mid-send: skipped at their turn
        ledger.register_worker(self.engine, alive, campaign.id, 10)
        while batch := ledger.claim_batch(self.engine, campaign.id, alive, 4):
            for row in batch:
                if ledger.start_sending(self.engine, row.id, alive) is not None:
                    self._record(campaign.id, row, alive)
        ledger.finish_if_done(self.engine, campaign.id)

    def _record(self, campaign_id: int, row, worker: str) -> None:
        if self.rng.random() < 0.1:
            ledger.mark_failed(self.engine, row.id, worker, "550 refused")
            return
        message_id = f"0102-{campaign_id}-{row.id}-{self.rng.random()}"
        if ledger.mark_sent(self.engine, row.id, worker, message_id):
            self.sent.append((row.id, campaign_id, row.email, message_id))

    def event(self) -> None:
        if not self.sent:
            return
        delivery, campaign, email, message_id = self.rng.choice(self.sent)
        kind = self.rng.choice(["delivery", "delivery", "bounce", "soft", "undetermined",
                                "complaint", "delivery-delay"])
        payload = twin({"soft": "event-bounce", "undetermined": "event-bounce"}.get(
            kind, f"event-{kind}"))
        if kind in ("soft", "undetermined"):
            payload["bounce"]["bounceType"] = {"soft": "Transient",
                                               "undetermined": "Undetermined"}[kind]
            payload["bounce"]["bounceSubType"] = "General"
        payload = retarget(payload, email, message_id, delivery=delivery, campaign=campaign)
        payload["mail"]["messageId"] = message_id
        ingest_events(self.engine, parse_notification(payload), self.settings)

    def play(self, steps: int) -> None:
        for _ in range(4):
            self.add()
        issue = 1000 + 100 * self.seed
        for _ in range(steps):
            step = self.rng.choices(
                [self.add, self.confirm_someone, self.import_file, self.unsubscribe,
                 self.forget, self.event, "send"],
                weights=[3, 1, 1, 2, 1, 6, 1])[0]
            if step == "send":
                issue += 1
                self.send(issue)
            else:
                step()
        self.send(issue + 1)
        for _ in range(5):
            self.event()


def play_seeds(engine, settings, tmp_path) -> None:
    for seed in SEEDS:
        History(engine, settings, seed, tmp_path).play(steps=25)
        assert mismatches(engine) == [], f"seed {seed}"


def test_counters_equal_a_full_recount_after_random_histories(engine, settings, tmp_path):
    play_seeds(engine, settings, tmp_path)
    with session(engine) as db:
        figures = counted_figures(db)
    # the histories did reach every figure, so the comparison could fail
    campaigns = figures["campaign_counts"].values()
    # (an undetermined bounce is kept as an event only: events.apply.record_bounce)
    for name in ("sent", "failed", "skipped", "unknown", "delivered", "bounced_hard",
                 "bounced_soft", "complained", "unsubscribed"):
        assert sum(c[name] for c in campaigns) > 0, name
    assert sum(w["imported"] for w in figures["week_counts"].values()) > 0


@pytest.mark.postgres
def test_counters_equal_a_full_recount_on_postgresql(pg_url, mailer_env, monkeypatch, tmp_path):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    settings = get_settings()
    play_seeds(get_engine(pg_url), settings, tmp_path)


@pytest.mark.postgres
def test_two_workers_at_once_on_postgresql_keep_exact_counts(pg_url, mailer_env, monkeypatch):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    engine = get_engine(pg_url)
    add_reader_rows(engine, 300)
    campaign = ledger.begin_campaign(engine, issue_number=800, subject="TWiR 800",
                                     transport="outbox", content_sha256="0" * 64).campaign
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            ledger.register_worker(engine, worker, campaign.id, 10)
            while batch := ledger.claim_batch(engine, campaign.id, worker, 3):
                for row in batch:
                    ledger.start_sending(engine, row.id, worker)
                    ledger.mark_sent(engine, row.id, worker, f"m-{row.id}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert mismatches(engine) == []
    with session(engine) as db:
        [sent] = db.execute(text("SELECT sent FROM campaign_counts WHERE campaign_id = :c"),
                            {"c": campaign.id}).one()
    assert sent == 300


class ConcurrentWriters:
    """Several writers at once, each on its own connections: send workers, SES events applied
    as they come, an import and readers leaving, as on a PostgreSQL server during a send."""

    def __init__(self, engine, settings, campaign_id: int, tmp_path) -> None:
        self.engine, self.settings, self.campaign_id = engine, settings, campaign_id
        self.tmp_path = tmp_path
        self.sent: list[tuple[int, str, str]] = []  # delivery, email, message id
        self.sending = threading.Event()
        self.errors: list[BaseException] = []

    def guarded(self, work, *args):
        def run() -> None:
            try:
                work(*args)
            except BaseException as error:
                self.errors.append(error)
        return threading.Thread(target=run)

    def send(self, worker: str) -> None:
        rng = random.Random(worker)
        ledger.register_worker(self.engine, worker, self.campaign_id, 10)
        while batch := ledger.claim_batch(self.engine, self.campaign_id, worker, 5):
            for row in batch:
                if ledger.start_sending(self.engine, row.id, worker) is None:
                    continue
                if rng.random() < 0.1:
                    ledger.mark_failed(self.engine, row.id, worker, "550 refused")
                    continue
                message_id = f"0102-{row.id}"
                if ledger.mark_sent(self.engine, row.id, worker, message_id):
                    self.sent.append((row.id, row.email, message_id))

    def apply_events(self) -> None:
        rng = random.Random(7)
        while self.sending.is_set() or self.sent:
            if not self.sent:
                continue
            delivery, email, message_id = self.sent.pop(rng.randrange(len(self.sent)))
            kind = rng.choice(["delivery", "delivery", "bounce", "complaint"])
            payload = retarget(twin(f"event-{kind}"), email, message_id, delivery=delivery,
                               campaign=self.campaign_id)
            ingest_events(self.engine, parse_notification(payload), self.settings)

    def import_files(self) -> None:
        for n in range(4):
            path = self.tmp_path / f"concurrent-{n}.csv"
            fresh = [f"imported{n}-{i}@example.net" for i in range(60)]
            path.write_text("email\n" + "\n".join(fresh + [f"reader{n}@example.org"]) + "\n")
            import_csv(self.engine, path, confirmed=True, secret=TEST_SECRET)

    def leave(self) -> None:
        for n in range(100, 300, 7):
            with session(self.engine) as db:
                remove_subscriber(db, f"reader{n}@example.org")
                db.commit()


@pytest.mark.postgres
def test_concurrent_senders_events_imports_and_leavers_keep_exact_counts_on_postgresql(
        pg_url, mailer_env, monkeypatch, tmp_path):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    engine = get_engine(pg_url)
    add_reader_rows(engine, 400)
    campaign = ledger.begin_campaign(engine, issue_number=801, subject="TWiR 801",
                                     transport="outbox", content_sha256="0" * 64).campaign
    writers = ConcurrentWriters(engine, get_settings(), campaign.id, tmp_path)
    writers.sending.set()
    senders = [writers.guarded(writers.send, f"w{n}") for n in range(3)]
    others = [writers.guarded(writers.apply_events), writers.guarded(writers.import_files),
              writers.guarded(writers.leave)]
    for thread in senders + others:
        thread.start()
    for thread in senders:
        thread.join()
    writers.sending.clear()
    for thread in others:
        thread.join()

    assert writers.errors == []
    assert mismatches(engine) == []
    with session(engine) as db:
        sent, skipped, bounced, unsubscribed = db.execute(text(
            "SELECT sent, skipped, bounced, unsubscribed FROM campaign_counts "
            "WHERE campaign_id = :c"), {"c": campaign.id}).one()
    # every writer did write, so the comparison could fail
    assert sent > 0 and bounced > 0 and unsubscribed > 0, (sent, skipped, bounced, unsubscribed)
    assert db_count(engine, "SELECT count(*) FROM subscriber WHERE source = 'import'") == 240


def db_count(engine, query: str) -> int:
    with session(engine) as db:
        return int(db.execute(text(query)).scalar_one())


def test_recount_repairs_a_counter_a_write_around_mailer_left_wrong(mailer_env, engine):
    add_reader_rows(engine, 3)
    campaign = ledger.begin_campaign(engine, issue_number=644, subject="TWiR 644",
                                     transport="outbox", content_sha256="0" * 64).campaign
    ledger.register_worker(engine, "w", campaign.id, 10)
    for row in ledger.claim_batch(engine, campaign.id, "w", 3):
        ledger.start_sending(engine, row.id, "w")
        ledger.mark_sent(engine, row.id, "w", f"m-{row.id}")
    before = json.loads(mailer(mailer_env, "stats", "--json").stdout)
    with engine.begin() as connection:  # a hand edit in sqlite3, say
        connection.execute(text("UPDATE campaign_counts SET sent = 99"))
        connection.execute(text("UPDATE subscriber_counts SET n = 7 WHERE status = 'active'"))
    assert json.loads(mailer(mailer_env, "subscribers", "count", "--json").stdout)["active"] == 7

    result = mailer(mailer_env, "db", "recount")

    assert result.returncode == 0, result.stderr
    assert f"campaign_counts {campaign.id} sent: 99 -> 3" in result.stdout
    assert "subscriber_counts active n: 7 -> 3" in result.stdout
    assert json.loads(mailer(mailer_env, "stats", "--json").stdout) == before
    assert json.loads(mailer(mailer_env, "subscribers", "count", "--json").stdout)["active"] == 3
    again = mailer(mailer_env, "db", "recount")
    assert "nothing changed" in again.stdout


def test_an_upgraded_database_starts_with_counters_that_match_its_rows(mailer_env):
    from tests.migration_seed import fill_at_first_revision

    fill_at_first_revision(mailer_env["MAILER_DATABASE_URL"])  # 30 readers, issue 630 sent

    assert mailer(mailer_env, "db", "upgrade").returncode == 0

    [campaign] = json.loads(mailer(mailer_env, "stats", "--json").stdout)["campaigns"]
    assert (campaign["issue_number"], campaign["recipients"], campaign["sent"]) == (630, 30, 30)
    assert json.loads(mailer(mailer_env, "subscribers", "count", "--json").stdout)["active"] == 30
    assert "nothing changed" in mailer(mailer_env, "db", "recount").stdout
