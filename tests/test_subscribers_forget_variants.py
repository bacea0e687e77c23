"""Forgetting covers the mailbox, not only the spelling (issue 19, item 15): Gmail's dots,
googlemail.com, letter case and +tags of a forgotten address are forgotten too. The operator is
told; a web sign-up gets the answer every address gets and no mail."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from mailer.cli import app as cli_app
from mailer.config import get_settings
from mailer.errors import SubscriberError
from mailer.store import subscribers as subs
from mailer.subscriptions import workflow
from mailer.store.db import session
from mailer.store.models import ForgottenAddress, Subscriber
from mailer.tokens import forget_hash
from mailer.web.app import create_app
from tests.fakes import RecordingTransport

FORGOTTEN = "Ann.Smith+news@gmail.com"
VARIANTS = ["annsmith@gmail.com", "a.n.n.s.m.i.t.h@googlemail.com", "AnnSmith+other@gmail.com",
            "ann.smith@GMAIL.com", "Ann.Smith+news@gmail.com"]


@pytest.fixture
def db(engine):
    with session(engine) as db_session:
        yield db_session


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_variant_of_a_forgotten_mailbox_is_added_or_imported(db, settings, tmp_path, variant):
    subs.forget_subscriber(db, FORGOTTEN, secret=settings.secret_key)
    with pytest.raises(SubscriberError, match="forgotten"):
        workflow.add_subscriber(db, variant, secret=settings.secret_key)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(f"email\n{variant}\nsomeone@example.org\n")
    report = subs.import_csv(db.get_bind(), csv_file, secret=settings.secret_key)
    assert report.added == 1 and report.forgotten == [(2, subs.normalise_address(variant))]


def test_hyphens_and_other_mailboxes_are_not_forgotten_with_it(db, settings):
    subs.forget_subscriber(db, "ann@example.org", secret=settings.secret_key)
    for other in ("ann-smith@example.org", "ann.smith@example.org", "ann@example.net"):
        assert workflow.add_subscriber(db, other, secret=settings.secret_key)[1]


def test_the_cli_says_a_variant_was_forgotten(mailer_env):
    runner = CliRunner()
    assert runner.invoke(cli_app, ["subscribers", "forget", FORGOTTEN, "--yes"]).exit_code == 0
    refused = runner.invoke(cli_app, ["subscribers", "add", "annsmith+x@googlemail.com"])
    assert refused.exit_code == 1 and "forgotten" in refused.stderr
    assert "Traceback" not in refused.output


def test_an_older_literal_hash_still_forgets_its_address(db, settings, engine):
    subs.forget_subscriber(db, "first@example.org", secret=settings.secret_key)  # makes the pepper
    with engine.begin() as connection:  # a row as earlier versions wrote it: the spelling only
        pepper = connection.execute(text("SELECT value FROM store_secret")).scalar_one()
        connection.execute(text("INSERT INTO forgotten_address (address_hash, forgotten_at) "
                                "VALUES (:h, CURRENT_TIMESTAMP)"),
                           {"h": forget_hash(pepper, "Old.Reader+x@gmail.com")})
    with pytest.raises(SubscriberError, match="forgotten"):
        workflow.add_subscriber(db, "old.reader+x@gmail.com", secret=settings.secret_key)


def test_a_web_sign_up_of_a_forgotten_mailbox_answers_as_usual_and_mails_nothing(
        mailer_env, engine, monkeypatch):
    monkeypatch.setenv("MAILER_SUBSCRIBE_RATE_PER_IP", "1000")
    get_settings.cache_clear()
    settings = get_settings()
    with session(engine) as db:
        subs.forget_subscriber(db, FORGOTTEN, secret=settings.secret_key)
    web = create_app(settings)
    web.state.transport = RecordingTransport()
    client = TestClient(web, follow_redirects=False)
    answers = {client.post("/subscribe", json={"email": address}).content
               for address in [*VARIANTS, "newcomer@example.org"]}
    form_answers = {client.post("/subscribe", data={"email": address}).headers["location"]
                    for address in ("annsmith@gmail.com", "other@example.org")}
    assert len(answers) == 1 and len(form_answers) == 1  # nothing tells the forgotten apart
    assert [message.to for message in web.state.transport.sent] == [
        "newcomer@example.org", "other@example.org"]
    with session(engine) as db:
        stored = db.execute(select(Subscriber.email)).scalars().all()
        assert sorted(stored) == ["newcomer@example.org", "other@example.org"]
        assert db.execute(select(func.count()).select_from(ForgottenAddress)).scalar_one() >= 1
