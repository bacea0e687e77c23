"""No silent development key (issue 9, item 1).

Nothing signs or checks a link, or records a forgotten address, without a real
MAILER_SECRET_KEY; forgetting does not depend on that key, so rotating it never lets a
forgotten reader back in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import DEV_SECRET_KEY, EXAMPLE_SECRET_KEY, get_settings
from mailer.errors import ConfigError
from mailer.store import subscribers as subs
from mailer.subscriptions import workflow
from mailer.store.db import session
from mailer.store.models import Campaign, ForgottenAddress, Subscriber
from mailer.tokens import (
    FORGET_HASH_PREFIX,
    address_hash,
    make_confirm_token,
    make_unsubscribe_token,
    read_unsubscribe_token,
)

MAILER = str(Path(sys.executable).with_name("mailer"))
NOT_REAL_KEYS = {"unset": None, "empty": "", "example": EXAMPLE_SECRET_KEY,
                 "old built-in": DEV_SECRET_KEY, "short": "too-short"}


def use_key(monkeypatch: pytest.MonkeyPatch, key: str | None) -> None:
    if key is None:
        monkeypatch.delenv("MAILER_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("MAILER_SECRET_KEY", key)
    get_settings.cache_clear()


def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def assert_key_error(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: MAILER_SECRET_KEY") and "mailer init" in lines[0]
    assert "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("key", list(NOT_REAL_KEYS.values()), ids=list(NOT_REAL_KEYS))
def test_send_without_a_real_key_fails_in_one_line_and_sends_nothing(mailer_env, engine, key):
    workflow.add_subscriber(session(engine), "reader@example.org", confirmed=True,
                        secret=mailer_env["MAILER_SECRET_KEY"])
    env = {k: v for k, v in {**os.environ, **mailer_env}.items() if k != "MAILER_SECRET_KEY"}
    if key is not None:
        env["MAILER_SECRET_KEY"] = key
    result = subprocess.run([MAILER, "send", "--issue", "644", "--yes"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=os.getcwd())

    assert result.returncode == 2
    assert_key_error(result.stderr)
    assert not Path(mailer_env["MAILER_OUTBOX_DIR"]).exists()  # not one message written
    with session(engine) as db:
        assert db.execute(select(Campaign)).first() is None  # and no campaign begun


@pytest.mark.parametrize("args", [
    ("subscribers", "add", "new@example.org"),
    ("subscribers", "import", "readers.csv", "--confirmed"),
    ("subscribers", "forget", "kept@example.org", "--yes"),
    ("send", "--issue", "644", "--to", "me@example.org"),
    ("worker",),
], ids=lambda args: " ".join(args[:2]))
def test_every_command_that_signs_or_forgets_refuses_without_a_key(
        mailer_env, engine, monkeypatch, tmp_path, args):
    (tmp_path / "readers.csv").write_text("email\nnew@example.org\n")
    workflow.add_subscriber(session(engine), "kept@example.org", confirmed=True,
                        secret=mailer_env["MAILER_SECRET_KEY"])
    use_key(monkeypatch, None)

    result = cli(*args)

    assert result.exit_code == 2, result.output
    assert_key_error(result.stderr)
    with session(engine) as db:  # nothing changed: the reader is there, nobody was added
        assert [s.email for s in db.execute(select(Subscriber)).scalars()] == ["kept@example.org"]
        assert db.execute(select(ForgottenAddress)).first() is None


def test_a_dry_run_needs_no_key(mailer_env, monkeypatch):
    use_key(monkeypatch, None)
    result = cli("send", "--issue", "644", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing sent" in result.stdout


@pytest.mark.parametrize("key", [k for k in NOT_REAL_KEYS.values() if k is not None])
def test_tokens_are_never_signed_or_checked_with_a_key_that_is_not_real(key):
    good = make_unsubscribe_token("a-real-key-0123456789abcdef", 7)
    for attempt in (lambda: make_unsubscribe_token(key, 7),
                    lambda: read_unsubscribe_token(key, good),
                    lambda: make_confirm_token(key, 7, "nonce")):
        with pytest.raises(ConfigError, match="MAILER_SECRET_KEY"):
            attempt()


def test_forgetting_survives_a_rotation_of_the_signing_key(mailer_env, monkeypatch, tmp_path):
    assert cli("subscribers", "add", "ann@example.org", "--confirmed").exit_code == 0
    forgot = cli("subscribers", "forget", "ann@example.org", "--yes")
    assert forgot.exit_code == 0, forgot.output

    use_key(monkeypatch, "a-brand-new-key-after-rotation-0123456789")
    old_list = tmp_path / "old-list.csv"
    old_list.write_text("email\nAnn@example.org\nbob@example.org\n")
    imported = cli("subscribers", "import", str(old_list), "--confirmed", "--json")

    assert imported.exit_code == 0, imported.output
    assert '"added": 1' in imported.stdout and "Ann@example.org" in imported.stdout
    listed = cli("subscribers", "list", "--json").stdout
    assert "bob@example.org" in listed and "ann@" not in listed.lower()
    refused = cli("subscribers", "add", "ann@example.org")
    assert refused.exit_code == 1 and "forgotten" in refused.stderr


def test_the_forget_hash_is_keyed_by_a_random_pepper_of_this_database(tmp_path):
    from mailer.store.db import get_engine, reset_engines

    stored = []
    for name in ("one.db", "two.db"):
        engine = get_engine(f"sqlite:///{tmp_path / name}")
        with session(engine) as db:
            subs.forget_subscriber(db, "ann@example.org", secret="key-0123456789abcdef")
            stored.append(db.execute(select(ForgottenAddress.address_hash)).scalar_one())
    reset_engines()
    assert all(h.startswith(FORGET_HASH_PREFIX) and "ann" not in h for h in stored)
    assert stored[0] != stored[1]  # each database has its own pepper


def test_old_forget_hashes_are_still_honoured_then_rehashed(engine, mailer_env, tmp_path):
    """Rows from before the pepper: one keyed by the operator's key, one by the old built-in
    key (a cron job that lacked MAILER_SECRET_KEY). Both keep their address out, and meeting
    the address again rewrites the row, so a later key rotation cannot free it."""
    real_key = mailer_env["MAILER_SECRET_KEY"]
    with engine.begin() as connection:
        connection.execute(ForgottenAddress.__table__.insert(), [
            {"address_hash": address_hash(real_key, "ann@example.org"), "forgotten_at": _now()},
            {"address_hash": address_hash(DEV_SECRET_KEY, "cron@example.org"),
             "forgotten_at": _now()},
        ])
    old_list = tmp_path / "old-list.csv"
    old_list.write_text("email\nann@example.org\ncron@example.org\nbob@example.org\n")

    first = subs.import_csv(engine, old_list, confirmed=True, secret=real_key)
    assert first.added == 1 and sorted(e for _, e in first.forgotten) == [
        "ann@example.org", "cron@example.org"]
    with engine.connect() as connection:
        hashes = connection.execute(text("SELECT address_hash FROM forgotten_address")).scalars()
        assert all(h.startswith(FORGET_HASH_PREFIX) for h in hashes)

    rotated = subs.import_csv(engine, old_list, confirmed=True,
                              secret="rotated-key-0123456789abcdef")
    assert rotated.added == 0 and len(rotated.forgotten) == 2


def _now():
    from mailer.domain import utcnow

    return utcnow()


# -- near-examples and low-variety keys (issue 19, item 13) -----------------------------------

WEAK_KEYS = {
    "example with a trailing space": EXAMPLE_SECRET_KEY + " ",
    "example in capitals": EXAMPLE_SECRET_KEY.upper(),
    "example with a tab and a newline around it": f"\t{EXAMPLE_SECRET_KEY}\n",
    "example quoted": f'"{EXAMPLE_SECRET_KEY}"',
    "old built-in, mixed case": DEV_SECRET_KEY.title(),
    "16 identical characters": "k" * 16,
    "64 identical characters": "k" * 64,
    "four characters over and over": "abcd" * 8,
    "short once the spaces are gone": "   0123456789abc   ",
}


@pytest.mark.parametrize("key", list(WEAK_KEYS.values()), ids=list(WEAK_KEYS))
def test_a_near_example_or_low_variety_key_is_refused(mailer_env, engine, monkeypatch, key):
    use_key(monkeypatch, key)

    result = cli("subscribers", "add", "new@example.org")

    assert result.exit_code == 2, result.output
    assert_key_error(result.stderr)
    with session(engine) as db:
        assert db.execute(select(Subscriber)).first() is None


def test_generated_keys_and_the_suites_own_key_pass():
    import secrets

    from mailer.config import secret_key_problem
    from tests.conftest import TEST_SECRET

    assert secret_key_problem(TEST_SECRET) is None
    for _ in range(500):  # what `mailer init` and the docs' one-liner write
        assert secret_key_problem(secrets.token_urlsafe(48)) is None
    assert secret_key_problem(secrets.token_urlsafe(12)) is None  # 16 characters, still random
