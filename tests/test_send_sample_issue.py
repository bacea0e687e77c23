"""An installed copy with a real transport and no issue source set reads the sample issue shipped
with mailer: the hourly `send --issue latest` timer must not mail it to every reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from mailer.campaigns import SendFlags, refuse_sample_issue
from mailer.cli import app
from mailer.config import Settings, get_settings
from mailer.errors import SendError
from mailer.store.models import Campaign, Delivery
from tests.fakes import add_readers
from tests.send_runs import outbox_messages

ROOT = Path(__file__).resolve().parent.parent


def send(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, ["send", "--issue", "644", "--yes", *args])


def campaigns_and_rows(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (connection.execute(select(func.count()).select_from(Campaign.__table__)).scalar(),
                connection.execute(select(func.count()).select_from(Delivery.__table__)).scalar())


@pytest.fixture
def smtp_env(mailer_env, monkeypatch):
    # Nothing listens there: a send that got as far as the transport would fail loudly.
    monkeypatch.setenv("MAILER_TRANSPORT", "smtp")
    monkeypatch.setenv("MAILER_SMTP_URL", "smtp://127.0.0.1:9")
    return mailer_env


def test_a_real_send_of_the_shipped_sample_refuses_in_one_line_and_starts_nothing(
        smtp_env, engine):
    add_readers(engine, "ada@example.org", "brendan@example.org")

    result = send("--not-before", "24h")  # the timer's command; 644 is long due

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: refusing to send the sample issue shipped with mailer to every reader through "
        "smtp: set MAILER_ISSUES_DIR to your issues folder (or MAILER_ISSUE_SOURCE to git, feed "
        "or atproto)"]
    assert campaigns_and_rows(engine) == (0, 0)


def test_the_outbox_demo_still_sends_the_sample(mailer_env, engine):
    add_readers(engine, "ada@example.org")

    result = send()

    assert result.exit_code == 0, result.output
    assert [str(m["To"]) for m in outbox_messages(mailer_env)] == ["ada@example.org"]


def test_a_dry_run_of_the_sample_through_a_real_transport_is_allowed(smtp_env, engine):
    assert refuse_sample_issue(get_settings(), SendFlags(dry_run=True)) is None
    assert refuse_sample_issue(get_settings(), SendFlags(to="ada@example.org")) is None


def test_a_named_issues_folder_is_a_choice_even_when_it_is_the_examples(smtp_env, monkeypatch):
    monkeypatch.setenv("MAILER_ISSUES_DIR", str(ROOT / "examples"))
    refuse_sample_issue(Settings(), SendFlags())  # no error


@pytest.mark.parametrize("source", ["git", "feed", "atproto"])
def test_another_issue_source_is_not_the_sample(smtp_env, monkeypatch, source):
    monkeypatch.setenv("MAILER_ISSUE_SOURCE", source)
    refuse_sample_issue(Settings(), SendFlags())  # no error


def test_the_default_folder_through_ses_is_refused(mailer_env, monkeypatch):
    monkeypatch.setenv("MAILER_TRANSPORT", "ses")
    with pytest.raises(SendError, match="MAILER_ISSUES_DIR"):
        refuse_sample_issue(Settings(), SendFlags())
