"""Issue 20, item 24: a test copy (`mailer send --to`) is marked as one.

It carried the issue's Subject unchanged, so in an editor's inbox it looked like the issue
itself. Now its Subject starts with `[test] ` (as a preview's starts with `[Preview] `), and
the rest of the message is what the readers get: the same List-Unsubscribe headers (links for
subscriber 0, which the web app refuses, when the address is not a reader). Through the CLI,
in process, with the outbox transport.
"""

from __future__ import annotations

from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import get_settings
from tests.mailer_cli import outbox
from tests.fakes import add_readers


def cli(*args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def test_a_test_copy_says_test_in_its_subject_and_keeps_the_readers_headers(mailer_env,
                                                                            engine):
    add_readers(engine, "ada@example.org")
    copy = cli("send", "--issue", "644", "--to", "editor@example.org")
    assert copy.exit_code == 0, copy.output
    real = cli("send", "--issue", "644", "--yes")
    assert real.exit_code == 0, real.output

    test_copy, reader_copy = outbox(mailer_env)
    assert str(test_copy["To"]) == "editor@example.org"
    assert str(reader_copy["To"]) == "ada@example.org"
    assert "644" in reader_copy["Subject"]
    assert test_copy["Subject"] == "[test] " + reader_copy["Subject"]
    assert not reader_copy["Subject"].startswith("[test]")
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        assert (test_copy[name] is None) == (reader_copy[name] is None), name
    assert test_copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert test_copy["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/")


def test_a_test_copy_to_a_reader_is_marked_too(mailer_env, engine):
    add_readers(engine, "ada@example.org")
    copy = cli("send", "--issue", "644", "--to", "Ada@Example.org")
    assert copy.exit_code == 0, copy.output
    (message,) = outbox(mailer_env)
    assert message["Subject"].startswith("[test] ") and "644" in message["Subject"]
