"""The send's policy matrix, in process, against its one entry (issue 22 §1).

``campaigns.send`` and ``campaigns.join`` run the whole workflow; these tests drive them through
a recording ``SendUI`` with a real SQLite ledger and the real outbox transport, so each case
takes milliseconds. The subprocess tests (test_send_cli.py, test_send_crash.py, ...) keep what
needs a process: signals, crashes, exit codes as the shell sees them.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from mailer import campaigns
from mailer.domain import (
    BounceType, CampaignStatus, DeliveryEvent, DeliveryStatus, EventKind, Reputation, utcnow,
)
from mailer.errors import SendError
from mailer.store.models import Campaign, Delivery, Subscriber

ISSUE = "644"
SHORT_ISSUE = """Title: This Week in Rust 644
Number: 644
Date: 2026-03-25
Category: This Week in Rust

Hello and welcome to another issue of *This Week in Rust*!

## Updates from Rust Community

* [An item](https://example.org/item)
"""


class RecordingUI:
    """A ``campaigns.SendUI`` that answers the confirmation and keeps what it was told."""

    def __init__(self, *, answer: bool = True, before_run=None, after_run=None) -> None:
        self.answer = answer
        self.before_run = before_run  # called with the dispatcher before each run
        self.after_run = after_run  # called with the dispatcher and its report after each run
        self.told: list[tuple[str, object]] = []
        self.asked = 0

    def notice(self, line):
        self.told.append(("notice", line))

    def warning(self, text):
        self.told.append(("warning", text))

    def advance_copy(self, issue):
        self.told.append(("preview", issue.number))

    def plan(self, plan, rendered, issue, transport, pace):
        self.told.append(("plan", plan))

    def canary_planned(self, sample, wait):
        self.told.append(("canary", sample))

    def confirm(self):
        self.asked += 1
        return self.answer

    def started(self, started):
        self.told.append(("started", started))

    def recovered(self, recovered):
        self.told.append(("recovered", recovered))

    def canary_waiting(self, wait):
        self.told.append(("canary wait", wait))

    def dispatch(self, dispatcher, total):
        if self.before_run:
            self.before_run(dispatcher)
        report = dispatcher.run()
        if self.after_run:
            self.after_run(dispatcher, report)
        return report

    def said(self, kind: str) -> list:
        return [what for told, what in self.told if told == kind]


def add_readers(engine, count: int) -> list[str]:
    now = utcnow()
    addresses = [f"reader{n}@example.org" for n in range(count)]
    with engine.begin() as connection:
        connection.execute(insert(Subscriber.__table__), [
            dict(email=address, status="active", created_at=now, updated_at=now)
            for address in addresses])
    return addresses


def outbox(settings) -> list[str]:
    """The recipient of each message the outbox holds."""
    folder = Path(settings.outbox_dir) / "new"
    if not folder.is_dir():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)["To"]
            for path in sorted(folder.iterdir())]


def all_campaigns(engine) -> list[Campaign]:
    with engine.connect() as connection:
        return [Campaign.model_validate(dict(row)) for row in connection.execute(
            select(Campaign.__table__).order_by(Campaign.__table__.c.id)).mappings()]


def statuses(engine) -> dict[str, int]:
    table = Delivery.__table__
    with engine.connect() as connection:
        found: dict[str, int] = {}
        for (status,) in connection.execute(select(table.c.status)):
            found[status] = found.get(status, 0) + 1
        return found


def send(settings, ui=None, **request):
    request.setdefault("issue", ISSUE)
    flags = request.pop("flags", {})
    result = campaigns.send(campaigns.SendRequest(settings=settings,
                                                  flags=campaigns.SendFlags(**flags), **request),
                            ui or RecordingUI())
    return result


@pytest.fixture
def settings(mailer_env, tmp_path, monkeypatch):
    """The test settings, with a short issue 644: the shipped sample takes seconds to render."""
    from mailer.config import get_settings

    folder = tmp_path / "issues"
    folder.mkdir()
    (folder / "644.md").write_text(SHORT_ISSUE)
    monkeypatch.setenv("MAILER_ISSUES_DIR", str(folder))
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def readers(engine):
    return add_readers(engine, 5)


# -- a first send, and sending again -------------------------------------------------------------

def test_a_send_mails_every_reader_once_and_says_so_on_the_way(settings, engine, readers):
    ui = RecordingUI()
    result = send(settings, ui)
    assert isinstance(result, campaigns.Outcome)
    assert result.report.finished and result.report.sent == 5
    assert result.counts[DeliveryStatus.SENT] == 5
    assert sorted(outbox(settings)) == sorted(readers)
    (plan,) = ui.said("plan")
    assert (plan.audience, plan.resuming) == (5, False)
    assert ui.asked == 1 and ui.said("started")[0].created
    assert any("no mail leaves" in line for line in ui.said("notice"))


def test_a_finished_issue_is_not_sent_again_without_again(settings, engine, readers):
    send(settings)
    ui = RecordingUI()
    result = send(settings, ui)
    assert isinstance(result, campaigns.AlreadySent)
    assert result.counts[DeliveryStatus.SENT] == 5
    assert ui.asked == 0 and len(outbox(settings)) == 5


def test_again_starts_a_new_campaign_for_everyone(settings, engine, readers):
    send(settings)
    result = send(settings, flags={"again": True})
    assert isinstance(result, campaigns.Outcome) and result.report.sent == 5
    assert len(all_campaigns(engine)) == 2
    assert sorted(outbox(settings)) == sorted(readers * 2)


def test_again_on_a_campaign_still_open_is_refused_and_sends_nothing(settings, engine, readers):
    send(settings, limit=2)
    with pytest.raises(SendError, match="--again: campaign 1 of issue 644 is stopped, not finished"):
        send(settings, flags={"again": True})
    assert len(outbox(settings)) == 2 and len(all_campaigns(engine)) == 1


# -- --limit, --not-before, dry runs, the confirmation ---------------------------------------------

def test_limit_sends_part_and_the_next_run_resumes_with_the_rest(settings, engine, readers):
    first = send(settings, limit=2)
    assert first.report.sent == 2 and first.report.limit_reached and not first.report.finished
    ui = RecordingUI()
    second = send(settings, ui)
    (plan,) = ui.said("plan")
    assert (plan.resuming, plan.audience, plan.size) == (True, 3, 5)
    assert second.report.finished and second.report.sent == 3
    assert sorted(outbox(settings)) == sorted(readers)


def test_not_before_in_the_future_sends_nothing_and_starts_no_campaign(settings, engine, readers):
    result = send(settings, not_before="99999w")
    assert isinstance(result, campaigns.NotDue) and result.issue_number == 644
    assert all_campaigns(engine) == [] and outbox(settings) == []


def test_not_before_in_the_past_sends(settings, engine, readers):
    result = send(settings, not_before="1h")
    assert isinstance(result, campaigns.Outcome) and result.report.sent == 5


def test_a_dry_run_plans_and_sends_nothing(settings, engine, readers):
    result = send(settings, flags={"dry_run": True})
    assert isinstance(result, campaigns.DryRun)
    assert (result.plan.audience, result.plan.new_campaign) == (5, True)
    assert all_campaigns(engine) == [] and outbox(settings) == []


def test_answering_no_sends_nothing_and_starts_no_campaign(settings, engine, readers):
    result = send(settings, RecordingUI(answer=False))
    assert isinstance(result, campaigns.Declined)
    assert all_campaigns(engine) == [] and outbox(settings) == []


def test_no_readers_creates_no_campaign(settings, engine):
    assert isinstance(send(settings), campaigns.NoReaders)
    assert all_campaigns(engine) == []


def test_a_test_copy_goes_to_one_address_outside_any_campaign(settings, engine, readers):
    result = send(settings, flags={"to": "Editor@Example.org"})
    assert isinstance(result, campaigns.TestCopy) and result.address == "Editor@example.org"
    assert outbox(settings) == ["Editor@example.org"] and all_campaigns(engine) == []


# -- paused campaigns, unknown rows ----------------------------------------------------------------

def pause(engine, reason: str = "hard bounces 9 of 10 sent") -> None:
    from mailer.store import ledger

    ledger.pause_campaign(engine, 1, reason, Reputation(sent=2, hard_bounces=2))


def test_a_paused_campaign_goes_on_only_with_resume(settings, engine, readers):
    send(settings, limit=2)
    pause(engine)
    stopped = send(settings)
    assert isinstance(stopped, campaigns.Paused)
    assert stopped.campaign.pause_reason == "hard bounces 9 of 10 sent"
    assert len(outbox(settings)) == 2

    resumed = send(settings, flags={"resume": True})
    assert resumed.report.finished and resumed.report.sent == 3
    assert sorted(outbox(settings)) == sorted(readers)


def make_unknown(engine, count: int) -> None:
    table = Delivery.__table__
    with engine.begin() as connection:
        ids = connection.execute(select(table.c.id).order_by(table.c.id).limit(count)).scalars()
        connection.execute(update(table).where(table.c.id.in_(list(ids)))
                           .values(status=DeliveryStatus.UNKNOWN.value))


def test_unknown_rows_are_resent_only_with_resend_unknown(settings, engine, readers):
    send(settings)
    make_unknown(engine, 2)
    left = send(settings)
    assert isinstance(left, campaigns.AlreadySent)
    assert left.counts[DeliveryStatus.UNKNOWN] == 2
    assert left.settling is None  # the outbox sends no events: nothing settles them
    assert len(outbox(settings)) == 5

    ui = RecordingUI()
    again = send(settings, ui, flags={"resend_unknown": True})
    assert again.report.sent == 2 and again.counts[DeliveryStatus.UNKNOWN] == 0
    assert ui.said("started")[0].requeued == 2
    assert len(outbox(settings)) == 7  # the two unknown ones, a second time


# -- the canary ------------------------------------------------------------------------------------

def test_a_canary_that_holds_lets_the_rest_follow_in_the_same_run(settings, engine):
    add_readers(engine, 20)
    ui = RecordingUI()
    result = send(settings, ui, canary="5", canary_wait="0.05s")
    assert ui.said("canary") == [5]
    assert ui.said("canary wait")[-1].left == 0  # said once they held
    assert result.report.finished and result.counts[DeliveryStatus.SENT] == 20
    assert len(outbox(settings)) == 20


def bounce_every_sent_row(settings, engine) -> None:
    from mailer.events.apply import ingest_events

    table = Delivery.__table__
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.id, table.c.email, table.c.campaign_id,
                                         table.c.provider_message_id)
                                  .where(table.c.status == DeliveryStatus.SENT.value)).all()
    ingest_events(engine, [
        DeliveryEvent(kind=EventKind.BOUNCE, recipient=row.email, occurred_at=utcnow(),
                      provider_message_id=row.provider_message_id, delivery_id=row.id,
                      campaign_id=row.campaign_id, bounce_type=BounceType.PERMANENT,
                      event_id=f"bounce-{row.id}")
        for row in rows], settings)


def test_a_canary_that_bounces_pauses_the_campaign_before_the_rest(settings, engine):
    add_readers(engine, 20)
    ui = RecordingUI(after_run=lambda _dispatcher, _report: bounce_every_sent_row(settings,
                                                                                  engine))
    result = send(settings, ui, canary="5", canary_wait="10s")
    assert result.report.paused
    (campaign,) = all_campaigns(engine)
    assert campaign.status == CampaignStatus.PAUSED
    assert campaign.pause_reason.startswith("canary: hard bounces 5 of 5 sent")
    assert len(outbox(settings)) == 5  # the sample only
    assert statuses(engine)[DeliveryStatus.QUEUED.value] == 15


def test_a_worker_joining_during_the_canary_sends_only_the_sample(settings, engine):
    add_readers(engine, 20)
    joined = []

    def join_first(dispatcher) -> None:
        if not joined:  # the sample's run: a worker joins before it starts
            joined.append(campaigns.join(campaigns.JoinRequest(settings=settings), worker_ui))

    worker_ui = RecordingUI()
    result = send(settings, RecordingUI(before_run=join_first), canary="5",
                  canary_wait="0.05s")
    (worker,) = joined
    assert worker.report.sent == 5  # the sample, and nothing of the rest before the verdict
    assert any("canary is not judged yet" in line for line in worker_ui.said("notice"))
    assert result.report.finished and result.counts[DeliveryStatus.SENT] == 20
    assert len(outbox(settings)) == 20  # no reader twice


def test_a_worker_finds_nothing_to_join_when_no_campaign_is_being_sent(settings, engine):
    result = campaigns.join(campaigns.JoinRequest(settings=settings), RecordingUI())
    assert isinstance(result, campaigns.NothingToJoin)


# -- the dispatcher on its ledger interface, without a database -------------------------------------

class InMemoryLease:
    """The ``mailer.dispatch.Lease`` interface on a dict: one worker, one campaign."""

    def __init__(self, addresses: list[str], *, reputation: Reputation = Reputation()) -> None:
        from mailer.store.ledger import ClaimedDelivery

        self.worker_id, self.campaign_id = "worker-1", 1
        self.rows = {n: ClaimedDelivery(id=n, subscriber_id=n, email=address, attempts=0)
                     for n, address in enumerate(addresses, start=1)}
        self.status = {n: DeliveryStatus.QUEUED for n in self.rows}
        self.leased: set[int] = set()
        self.reasons: dict[int, str] = {}
        self.figures = reputation
        self.state = InMemoryCampaign()

    def join(self, rate): pass
    def beat(self, rate): return 1
    def recover_abandoned(self): return None
    def live_peers(self): return 0
    def leave(self): pass

    def claim(self, limit, *, canary_only=False):
        free = [n for n, status in self.status.items()
                if status == DeliveryStatus.QUEUED and n not in self.leased][:limit]
        self.leased.update(free)
        return [self.rows[n] for n in free]

    def start_sending(self, row):
        self.status[row.id] = DeliveryStatus.SENDING
        return DeliveryStatus.SENDING

    def _mark(self, row, status, reason=None):
        self.status[row.id] = status
        if reason:
            self.reasons[row.id] = reason
        return True

    def sent(self, row, provider_message_id): return self._mark(row, DeliveryStatus.SENT)
    def failed(self, row, reason): return self._mark(row, DeliveryStatus.FAILED, reason)
    def failed_held(self, row, reason): return self._mark(row, DeliveryStatus.FAILED, reason)
    def retry(self, row, reason): return self._mark(row, DeliveryStatus.QUEUED, reason)
    def unknown(self, row, reason): return self._mark(row, DeliveryStatus.UNKNOWN, reason)

    def campaign(self): return self.state
    def reputation(self): return self.figures
    def baseline(self): return None

    def pause(self, reason, figures):
        self.state.status, self.state.pause_reason = CampaignStatus.PAUSED, reason
        return True

    def counts(self):
        return {status: list(self.status.values()).count(status) for status in DeliveryStatus}

    def finish_if_done(self):
        left = {DeliveryStatus.QUEUED, DeliveryStatus.SENDING} & set(self.status.values())
        if not left and self.state.status == CampaignStatus.SENDING:
            self.state.status = CampaignStatus.FINISHED
        return not left

    def stop(self, note):
        self.state.status, self.state.note = CampaignStatus.STOPPED, note

    def store_failure(self, error): return None


class InMemoryCampaign:
    status = CampaignStatus.SENDING
    note: str | None = None
    pause_reason: str | None = None


class RecordingTransport:
    """Takes every message except those to ``refuse``, which it rejects."""

    name = "recording"

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse, self.accepted = refuse, []

    def send(self, message) -> str:
        from mailer.errors import Rejected

        if message.to in self.refuse:
            raise Rejected("550 no such mailbox")
        self.accepted.append(message.to)
        return f"message-{len(self.accepted)}"


class ShortIssue:
    subject = "This Week in Rust 644"
    html = "<p>Issue 644</p><a href='%%UNSUB%%'>unsubscribe</a>"
    text = "Issue 644\nUnsubscribe: %%UNSUB%%\n"


def plain_personalise(rendered, *, unsubscribe_url: str, manage_url: str) -> tuple[str, str]:
    return (rendered.html.replace("%%UNSUB%%", unsubscribe_url),
            rendered.text.replace("%%UNSUB%%", unsubscribe_url))


def dispatcher_on(lease, transport, settings, **options):
    from mailer.dispatch import Dispatcher, MessageComposer, SendOptions

    composer = MessageComposer(ShortIssue(), settings, campaign_id=1, issue_number=644,
                               personalise=plain_personalise)
    return Dispatcher(lease, transport, composer, 1,
                      SendOptions(rate=1000, concurrency=2, heartbeat_interval=0.05, **options))


def test_the_dispatcher_runs_on_its_ledger_interface_without_a_database(settings):
    addresses = [f"reader{n}@example.org" for n in range(6)]
    lease = InMemoryLease(addresses)
    transport = RecordingTransport(refuse=("reader5@example.org",))
    report = dispatcher_on(lease, transport, settings).run()

    assert sorted(transport.accepted) == addresses[:5]  # each once
    assert report.sent == 5 and report.failed == 1 and report.finished
    assert lease.status[6] == DeliveryStatus.FAILED
    assert lease.reasons[6] == "rejected: 550 no such mailbox"
    assert lease.state.status == CampaignStatus.FINISHED
    assert not Path(settings.database_url.removeprefix("sqlite:///")).exists()


def test_the_breaker_pauses_through_the_ledger_interface_before_the_first_message(settings):
    from mailer.breaker import Thresholds

    lease = InMemoryLease(["reader@example.org"],
                          reputation=Reputation(sent=10, hard_bounces=10))
    transport = RecordingTransport()
    rule = Thresholds(min_sent=1, min_bounces=1)
    report = dispatcher_on(lease, transport, settings, breaker=rule).run()

    assert report.paused and transport.accepted == []
    assert lease.state.status == CampaignStatus.PAUSED
    assert lease.state.pause_reason.startswith("hard bounces 10 of 10 sent")
    assert lease.status[1] == DeliveryStatus.QUEUED


def test_a_dispatcher_without_thresholds_has_no_reputation_to_check(settings):
    # check_reputation is public: with no breaker set it answers "nothing crossed" rather than
    # failing on the missing thresholds
    lease = InMemoryLease(["reader@example.org"], reputation=Reputation(sent=10, hard_bounces=10))
    dispatcher = dispatcher_on(lease, RecordingTransport(), settings)

    assert dispatcher.check_reputation() is None
    assert lease.state.status != CampaignStatus.PAUSED
