"""The reader's own page (issue 26), end to end through the web app: what the reader sees at
``/manage/<token>`` and what a forger, an old mail or a scanner can do with it."""

from __future__ import annotations

from sqlmodel import select

from mailer.domain import SubscriberStatus
from mailer.store.db import session
from mailer.store.models import Subscriber, SubscriberChange
from mailer.tokens import make_manage_token, make_unsubscribe_token
from mailer.web.manage import MANAGE_REQUESTS_PER_MINUTE


def row(engine, email: str) -> Subscriber:
    with session(engine) as db:
        return db.exec(select(Subscriber).where(Subscriber.email == email)).one()


def confirmed_reader(client, transport, engine, email: str) -> Subscriber:
    """A reader who signed up on the form and clicked the confirmation mail's link."""
    client.post("/subscribe", json={"email": email})
    line = next(line for line in transport.sent[-1].text.splitlines() if "/confirm/" in line)
    client.post(f"/confirm/{line.rsplit('/confirm/', 1)[1].strip()}")
    return row(engine, email)


def test_the_confirmed_page_links_to_the_readers_own_page(client, transport, engine, settings):
    client.post("/subscribe", json={"email": "new@example.org"})
    line = next(line for line in transport.sent[-1].text.splitlines() if "/confirm/" in line)
    confirmed = client.post(f"/confirm/{line.rsplit('/confirm/', 1)[1].strip()}")
    reader = row(engine, "new@example.org")
    assert f'href="/manage/{make_manage_token(settings.secret_key, reader.id)}"' in confirmed.text


def test_the_page_shows_address_status_and_since_when_and_get_changes_nothing(
        client, transport, engine, settings):
    reader = confirmed_reader(client, transport, engine, "ann@example.org")
    with session(engine) as db:
        confirmed_at = db.exec(select(SubscriberChange.at).where(
            SubscriberChange.subscriber_id == reader.id,
            SubscriberChange.to_status == SubscriberStatus.ACTIVE)).one()
    page = client.get(f"/manage/{make_manage_token(settings.secret_key, reader.id)}")
    assert page.status_code == 200
    assert "ann@example.org" in page.text and "receives" in page.text
    assert f"since {confirmed_at.strftime('%-d %B %Y')}" in page.text
    unsubscribe = make_unsubscribe_token(settings.secret_key, reader.id)
    assert f'action="/unsubscribe/{unsubscribe}"' in page.text
    assert row(engine, "ann@example.org").status == SubscriberStatus.ACTIVE


def test_the_pages_unsubscribe_button_unsubscribes_and_the_page_then_says_so(
        client, transport, engine, settings):
    reader = confirmed_reader(client, transport, engine, "bob@example.org")
    path = f"/manage/{make_manage_token(settings.secret_key, reader.id)}"
    unsubscribe = make_unsubscribe_token(settings.secret_key, reader.id)
    assert client.post(f"/unsubscribe/{unsubscribe}", data={}).status_code == 200
    after = client.get(path)
    assert after.status_code == 200
    assert "is unsubscribed since" in after.text and 'action="/unsubscribe/' not in after.text
    assert row(engine, "bob@example.org").status == SubscriberStatus.UNSUBSCRIBED


def test_forged_foreign_and_unsubscribe_tokens_do_not_open_the_page(
        client, transport, engine, settings):
    reader = confirmed_reader(client, transport, engine, "cat@example.org")
    token = make_manage_token(settings.secret_key, reader.id)
    for bad in (make_unsubscribe_token(settings.secret_key, reader.id),
                make_manage_token("someone-elses-secret-key-123456", reader.id),
                token[:-3], f"{reader.id + 1}.{token.split('.', 1)[1]}", "a" * 600):
        response = client.get(f"/manage/{bad}")
        assert response.status_code == 400, bad
        assert "cat@example.org" not in response.text


def test_the_page_of_an_erased_reader_reveals_nothing(client, settings):
    response = client.get(f"/manage/{make_manage_token(settings.secret_key, 999)}")
    assert response.status_code == 404 and "Not on our list" in response.text
    assert "@example" not in response.text and "Unsubscribe</button>" not in response.text


def test_the_page_carries_the_public_pages_headers(client, transport, engine, settings):
    reader = confirmed_reader(client, transport, engine, "dan@example.org")
    page = client.get(f"/manage/{make_manage_token(settings.secret_key, reader.id)}")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"


def test_the_page_is_rate_limited_per_network(client, transport, engine, settings):
    reader = confirmed_reader(client, transport, engine, "eve@example.org")
    path = f"/manage/{make_manage_token(settings.secret_key, reader.id)}"
    answers = [client.get(path).status_code for _ in range(MANAGE_REQUESTS_PER_MINUTE)]
    refused = client.get(path)
    assert set(answers) == {200}
    assert refused.status_code == 429 and "retry-after" in refused.headers


def test_the_manage_link_in_a_sent_issue_opens_the_readers_own_page(
        client, transport, engine, settings, mailer_env):
    """The footer's "Manage" link of a real send (to the outbox) leads to /manage/<token>,
    not to the unsubscribe page; List-Unsubscribe stays the one-click unsubscribe URL."""
    from typer.testing import CliRunner

    from mailer.cli import app
    from mailer.config import get_settings
    from tests.mailer_cli import outbox

    reader = confirmed_reader(client, transport, engine, "cat@example.org")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["send", "--issue", "644", "--yes"])
    assert result.exit_code == 0, result.output
    (message,) = [m for m in outbox(mailer_env) if m["To"] == "cat@example.org"]
    text = message.get_body(("plain",)).get_content()
    manage = next(line for line in text.splitlines() if "Manage" in line)
    path = "/manage/" + manage.split("/manage/", 1)[1].strip(" <>")
    assert path == f"/manage/{make_manage_token(settings.secret_key, reader.id)}"
    assert "/unsubscribe/" in message["List-Unsubscribe"]
    page = client.get(path)
    assert page.status_code == 200 and "cat@example.org" in page.text


# -- download my data, erase me ----------------------------------------------------------------

def send_issue_644() -> None:
    from typer.testing import CliRunner

    from mailer.cli import app
    from mailer.config import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["send", "--issue", "644", "--yes"])
    assert result.exit_code == 0, result.output


def event_for(engine, email: str, kind: str = "Delivery") -> None:
    """A provider event about the reader's delivery, as event application stores one."""
    import json

    from mailer.domain import utcnow
    from mailer.store.models import Delivery, DeliveryEventRecord

    with session(engine) as db:
        delivery = db.exec(select(Delivery).where(Delivery.email == email)).one()
        db.add(DeliveryEventRecord(event_key=f"test:{email}:{kind}", kind=kind, recipient=email,
                                   occurred_at=utcnow(), delivery_id=delivery.id,
                                   diagnostic=f"250 ok for {email}", raw=json.dumps({})))
        db.commit()


def test_download_my_data_holds_every_row_about_the_reader_and_nobody_elses(
        client, transport, engine, settings):
    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    confirmed_reader(client, transport, engine, "bob@example.org")
    send_issue_644()
    event_for(engine, "ann@example.org")
    event_for(engine, "bob@example.org")
    path = f"/manage/{make_manage_token(settings.secret_key, ann.id)}/export"

    assert client.get(path).status_code == 405  # a link followed by a scanner fetches nothing
    download = client.post(path)

    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/json")
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"
    data = download.json()
    assert data["address"] == "ann@example.org" and data["status"] == "active"
    assert data["consent"]["confirmed_at"] and data["consent"]["source"] == "web"
    with session(engine) as db:
        changes = db.exec(select(SubscriberChange).where(
            SubscriberChange.subscriber_id == ann.id)).all()
    assert [(c["to"], c["source"]) for c in data["status_history"]] == [
        (str(c.to_status), c.source) for c in changes]
    assert [(d["issue"], d["address"]) for d in data["deliveries"]] == [(644, "ann@example.org")]
    assert [e["kind"] for e in data["events"]] == ["Delivery"]
    assert "bob@example.org" not in download.text


def test_erase_me_asks_first_then_erases_and_an_import_never_brings_the_address_back(
        client, transport, engine, settings, tmp_path):
    from mailer.store import subscribers as subs

    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    send_issue_644()
    page = f"/manage/{make_manage_token(settings.secret_key, ann.id)}"

    asked = client.get(f"{page}/erase")
    assert asked.status_code == 200 and 'action="' + page + '/erase"' in asked.text
    assert row(engine, "ann@example.org").status == SubscriberStatus.ACTIVE  # the GET changed nothing

    erased = client.post(f"{page}/erase")
    assert erased.status_code == 200
    assert "ann@example.org" in erased.text and "keyed hash" in erased.text
    assert "1 issue sent to you" in " ".join(erased.text.split())
    with session(engine) as db:
        assert db.exec(select(Subscriber).where(Subscriber.email == "ann@example.org")).first() is None
    assert client.get(page).status_code == 404  # the old link reveals nothing now

    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email\nann@example.org\nnew@example.org\n")
    report = subs.import_csv(engine, csv_file, secret=settings.secret_key)
    assert report.added == 1 and [address for _, address in report.forgotten] == ["ann@example.org"]
    with session(engine) as db:
        assert db.exec(select(Subscriber).where(Subscriber.email == "ann@example.org")).first() is None


# -- pause -------------------------------------------------------------------------------------

def deliveries_of(engine, email: str) -> list[tuple[str, str | None]]:
    from mailer.store.models import Delivery

    with session(engine) as db:
        return [(str(d.status), d.error) for d in db.exec(
            select(Delivery).where(Delivery.email == email).order_by(Delivery.id)).all()]


def send_again() -> None:
    from typer.testing import CliRunner

    from mailer.cli import app
    from mailer.config import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["send", "--issue", "644", "--yes", "--again"])
    assert result.exit_code == 0, result.output


def test_a_pause_skips_exactly_the_issues_in_its_window_and_counts_them_apart(
        client, transport, engine, settings, mailer_env):
    from datetime import timedelta

    from mailer.domain import utcnow
    from tests.mailer_cli import outbox

    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    confirmed_reader(client, transport, engine, "bob@example.org")
    page = f"/manage/{make_manage_token(settings.secret_key, ann.id)}"
    until = (utcnow().date() + timedelta(days=14)).isoformat()

    paused = client.post(f"{page}/pause", data={"until": until})
    assert paused.status_code == 303 and paused.headers["location"] == page
    shown = client.get(page).text
    assert "you get no issues until" in shown and "Resume now" in shown
    assert row(engine, "ann@example.org").status == SubscriberStatus.ACTIVE  # still subscribed

    from typer.testing import CliRunner

    from mailer.cli import app
    from mailer.config import get_settings

    get_settings.cache_clear()  # inside the window: skipped, counted apart, not mailed
    sent = CliRunner().invoke(app, ["send", "--issue", "644", "--yes"])
    assert sent.exit_code == 0, sent.output
    assert "1 sent, 0 failed, 1 skipped (1 paused by the reader)" in sent.output
    assert deliveries_of(engine, "ann@example.org") == [("skipped", "paused by the reader")]
    assert deliveries_of(engine, "bob@example.org") == [("sent", None)]
    assert [m["To"] for m in outbox(mailer_env)] == ["bob@example.org"]

    with session(engine) as db:  # the window passes
        reader = db.get(Subscriber, ann.id)
        reader.paused_until = utcnow() - timedelta(minutes=1)
        db.add(reader)
        db.commit()
    send_again()  # the first issue after the window goes to her as usual
    assert deliveries_of(engine, "ann@example.org") == [("skipped", "paused by the reader"),
                                                        ("sent", None)]
    assert sorted(m["To"] for m in outbox(mailer_env)) == ["ann@example.org", "bob@example.org",
                                                           "bob@example.org"]
    with session(engine) as db:  # the pause is in her history, with its source
        sources = [c.source for c in db.exec(select(SubscriberChange).where(
            SubscriberChange.subscriber_id == ann.id)).all()]
    assert "manage-pause" in sources


def test_a_pause_out_of_range_is_refused_and_changes_nothing(client, transport, engine, settings):
    from datetime import timedelta

    from mailer.domain import utcnow

    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    page = f"/manage/{make_manage_token(settings.secret_key, ann.id)}"
    today = utcnow().date()
    for until in (today.isoformat(), (today + timedelta(days=93)).isoformat(), "next week", ""):
        answer = client.post(f"{page}/pause", data={"until": until} if until else {})
        if until:
            assert answer.status_code == 400, until
            assert "Traceback" not in answer.text
        assert row(engine, "ann@example.org").paused_until is None
    assert client.post(f"{page}/pause", data={
        "until": (today + timedelta(days=92)).isoformat()}).status_code == 303


def test_resume_now_ends_the_pause(client, transport, engine, settings):
    from datetime import timedelta

    from mailer.domain import utcnow

    ann = confirmed_reader(client, transport, engine, "ann@example.org")
    page = f"/manage/{make_manage_token(settings.secret_key, ann.id)}"
    client.post(f"{page}/pause", data={"until": (utcnow().date() + timedelta(days=7)).isoformat()})
    assert row(engine, "ann@example.org").paused_until is not None
    assert client.post(f"{page}/pause", data={"until": ""}).status_code == 303
    assert row(engine, "ann@example.org").paused_until is None
    assert 'name="until" min=' in client.get(page).text  # the page offers a pause again
