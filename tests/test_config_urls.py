"""URL settings are checked when settings load (issue 20, item 2): a malformed one stops any
command with one line naming the variable, before anything is read, written or sent; and mail
through SES or SMTP carries only https links (the outbox and --dry-run keep http for local use).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from mailer.store.models import Campaign, Delivery
from tests.conftest import ROOT
from tests.fakes import add_readers
from tests.send_runs import outbox_messages


def run(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output  # one line, no traceback
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def campaigns_and_rows(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (connection.execute(select(func.count()).select_from(Campaign.__table__)).scalar(),
                connection.execute(select(func.count()).select_from(Delivery.__table__)).scalar())


BAD_BASE_URLS = {
    "not a URL": "notaurl",
    "no scheme": "twir.example.org",
    "another scheme": "ftp://twir.example.org",
    "no host": "https://",
    "a query": "https://twir.example.org/?utm=1",
    "a fragment": "https://twir.example.org/#top",
    "a user": "https://editor@twir.example.org",
    "a bad port": "https://twir.example.org:99999",
    "a space": "https://twir example.org",
}


@pytest.mark.parametrize("url", BAD_BASE_URLS.values(), ids=BAD_BASE_URLS.keys())
def test_a_malformed_base_url_stops_a_send_before_any_mail(mailer_env, engine, monkeypatch, url):
    add_readers(engine, "ada@example.org")
    monkeypatch.setenv("MAILER_BASE_URL", url)

    result = run("send", "--issue", "644", "--yes")

    assert result.exit_code == 2
    assert one_error_line(result).startswith("error: bad setting MAILER_BASE_URL: ")
    assert outbox_messages(mailer_env) == []  # before: List-Unsubscribe: <notaurl/...>
    assert campaigns_and_rows(engine) == (0, 0)


def test_a_malformed_base_url_stops_any_command(mailer_env, monkeypatch):
    monkeypatch.setenv("MAILER_BASE_URL", "notaurl")

    result = run("subscribers", "count")

    assert result.exit_code == 2
    assert "MAILER_BASE_URL" in one_error_line(result) and "'notaurl'" in result.output


def test_a_password_in_a_url_setting_is_never_printed(mailer_env, monkeypatch):
    monkeypatch.setenv("MAILER_BASE_URL", "https://editor:hunter2-secret@twir.example.org")

    result = run("stats")

    assert result.exit_code == 2
    assert "MAILER_BASE_URL" in one_error_line(result)
    assert "hunter2-secret" not in result.output


OTHER_URL_SETTINGS = {
    "MAILER_SES_ENDPOINT_URL": "127.0.0.1:5000",
    "MAILER_SMTP_URL": "https://smtp.example.org",
    "MAILER_SOURCE_FEED_URL": "this-week-in-rust.org/atom.xml",
    "MAILER_SOURCE_PDS_URL": "ftp://pds.example.org",
    "MAILER_SOURCE_GIT_URL": "--upload-pack=touch /tmp/pwned",
    "MAILER_ALLOWED_RETURN_URLS": "https://this-week-in-rust.org/,//evil.example",
}


@pytest.mark.parametrize("variable", OTHER_URL_SETTINGS)
def test_every_url_setting_is_checked_when_settings_load(mailer_env, monkeypatch, variable):
    monkeypatch.setenv(variable, OTHER_URL_SETTINGS[variable])

    result = run("stats")

    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"error: bad setting {variable}: ")


GOOD_URLS = {
    "MAILER_BASE_URL": "https://twir.example.org/newsletter/",
    "MAILER_SES_ENDPOINT_URL": "http://127.0.0.1:5000",
    "MAILER_SMTP_URL": "smtps://user:p%40ss@smtp.example.org:465?timeout=10",
    "MAILER_SOURCE_FEED_URL": "https://this-week-in-rust.org/atom.xml?full=1",
    "MAILER_SOURCE_PDS_URL": "https://[::1]:2583",
    "MAILER_SOURCE_GIT_URL": "git@github.com:rust-lang/this-week-in-rust.git",
    "MAILER_ALLOWED_RETURN_URLS": "https://this-week-in-rust.org/, http://127.0.0.1:8080/",
}


def test_the_documented_url_forms_still_load(engine, monkeypatch):
    for variable, value in GOOD_URLS.items():
        monkeypatch.setenv(variable, value)

    result = run("subscribers", "count")

    assert result.exit_code == 0, result.output


# -- https for mail that reaches readers --------------------------------------------------------

@pytest.fixture
def smtp_env(mailer_env, monkeypatch):
    # Nothing listens there: a send that got as far as the transport would fail loudly.
    monkeypatch.setenv("MAILER_TRANSPORT", "smtp")
    monkeypatch.setenv("MAILER_SMTP_URL", "smtp://127.0.0.1:9")
    monkeypatch.setenv("MAILER_ISSUES_DIR", str(ROOT / "examples"))  # not the shipped sample
    return mailer_env


HTTPS_REFUSAL = ("error: MAILER_BASE_URL is 'http://127.0.0.1:8000', not https: mail through "
                 "smtp would carry its links to readers. Set it to the web app's public https "
                 "address (the outbox and --dry-run accept http)")


@pytest.mark.parametrize("command", [
    ["send", "--issue", "644", "--yes"],
    ["send", "--issue", "644", "--to", "editor@example.org"],
    ["worker"],
    ["serve", "--port", "1"],
], ids=["send", "test copy", "worker", "serve"])
def test_plain_http_links_through_a_real_transport_stop_in_one_line(smtp_env, engine, command):
    add_readers(engine, "ada@example.org")

    result = run(*command)

    assert result.exit_code == 2
    assert one_error_line(result) == HTTPS_REFUSAL
    assert campaigns_and_rows(engine) == (0, 0)


def test_the_outbox_keeps_plain_http_for_local_use(mailer_env, engine):
    add_readers(engine, "ada@example.org")

    result = run("send", "--issue", "644", "--yes")

    assert result.exit_code == 0, result.output
    [mail] = outbox_messages(mailer_env)
    assert "<http://127.0.0.1:8000/unsubscribe/" in mail["List-Unsubscribe"]


@pytest.mark.peer
def test_a_dry_run_through_ses_keeps_plain_http(mailer_env, engine, moto_ses, monkeypatch):
    for name, value in moto_ses.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAILER_BASE_URL", "http://127.0.0.1:8000")
    moto_ses.verify_identity("example.org")
    add_readers(engine, "ada@example.org")

    result = run("send", "--issue", "644", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "dry run: nothing sent" in result.output


def test_an_empty_optional_url_is_unset(mailer_env, engine, monkeypatch):
    for variable in OTHER_URL_SETTINGS:
        monkeypatch.setenv(variable, "")

    assert run("subscribers", "count").exit_code == 0
    assert get_settings().smtp_url is None and get_settings().allowed_return_urls == []
