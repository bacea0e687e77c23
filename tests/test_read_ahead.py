"""A large import reads its file in a second process (mailer.read_ahead) while it writes: the
same rows, the same report, the same errors as reading it in the one process."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
from sqlalchemy import select

from mailer.errors import SubscriberError
from mailer.read_ahead import read_ahead
from mailer.store import subscriber_files
from mailer.store import subscribers as subs
from mailer.store.db import get_engine, reset_engines, session
from mailer.store.models import Subscriber, SubscriberChange

SECRET = "read-ahead-test-secret-0123456789abcdef"


def test_items_arrive_in_order_from_another_process():
    def produce():
        for n in range(500):
            yield n, os.getpid()

    items = list(read_ahead(produce))
    assert [n for n, _pid in items] == list(range(500))
    assert {pid for _n, pid in items} != {os.getpid()}  # made elsewhere
    assert not multiprocessing.active_children()


def test_an_error_in_the_reader_is_raised_here_after_the_items_before_it():
    def produce():
        yield 1
        yield 2
        raise SubscriberError("readers.csv: line 3 is broken")

    got = []
    with pytest.raises(SubscriberError, match="line 3 is broken"):
        for item in read_ahead(produce):
            got.append(item)
    assert got == [1, 2]
    assert not multiprocessing.active_children()


def test_a_caller_that_stops_early_stops_the_reader():
    def produce():
        n = 0
        while True:  # never ends by itself
            n += 1
            yield n

    started = time.monotonic()
    items = read_ahead(produce)
    assert [next(items) for _ in range(3)] == [1, 2, 3]
    items.close()
    assert not multiprocessing.active_children()
    assert time.monotonic() - started < 10


@pytest.fixture
def two_stores(tmp_path):
    """Two empty databases: one for each way of reading (the reading never touches the
    database, so SQLite shows it for both kinds)."""
    yield [get_engine(f"sqlite:///{tmp_path / f'{name}.db'}") for name in ("here", "ahead")]
    reset_engines()


def _rows_of(engine) -> list[tuple]:
    with session(engine) as db:
        readers = db.execute(select(Subscriber.email, Subscriber.status, Subscriber.attrs)
                             .order_by(Subscriber.email)).all()
        changes = db.execute(select(SubscriberChange.to_status, SubscriberChange.detail)
                             .order_by(SubscriberChange.detail)).all()
    return [tuple(r) for r in readers] + [tuple(c) for c in changes]


def test_reading_ahead_imports_what_reading_here_imports(two_stores, tmp_path, monkeypatch):
    lines = ["email,name"]
    for n in range(4_500):  # three chunks and a part
        lines.append(f"reader{n}@example.org,Reader {n}")
    lines[7] = "not-an-address,Bad"  # invalid in the first chunk
    lines[4_400] = "also@bad@example.org,Bad"  # and in the last
    lines[3_000] = "READER10@example.org,Again"  # a repeat two chunks later
    source = tmp_path / "readers.csv"
    source.write_text("\n".join(lines) + "\n")

    here, ahead = two_stores
    monkeypatch.setattr(subscriber_files, "READ_AHEAD_LINES", 10**9)
    read_here = subs.import_csv(here, source, confirmed=True, secret=SECRET)
    monkeypatch.setattr(subscriber_files, "READ_AHEAD_LINES", 0)
    told: list[int] = []
    read_ahead_report = subs.import_csv(ahead, source, confirmed=True, secret=SECRET,
                                        on_rows=told.append)

    assert read_ahead_report.as_dict() == read_here.as_dict()
    assert (read_here.added, read_here.duplicates, len(read_here.invalid)) == (4_497, 1, 2)
    assert [line for line, _ in read_here.invalid] == [8, 4_401]
    assert _rows_of(ahead) == _rows_of(here)
    assert sum(told) == 4_500  # progress heard every data line
    assert not multiprocessing.active_children()


def test_a_file_without_an_email_column_stops_a_read_ahead_import_before_any_write(
        tmp_path, monkeypatch):
    engine = get_engine(f"sqlite:///{tmp_path / 'subscribers.db'}")
    source = tmp_path / "wrong.csv"
    source.write_text("name,mail\n" + "".join(f"R,r{n}@example.org\n" for n in range(50)))
    monkeypatch.setattr(subscriber_files, "READ_AHEAD_LINES", 0)
    with pytest.raises(SubscriberError, match="no 'email' column"):
        subs.import_csv(engine, source, secret=SECRET)
    with session(engine) as db:
        assert db.execute(select(Subscriber.id)).first() is None
    assert not multiprocessing.active_children()
    reset_engines()


def test_reading_a_mailchimp_export_ahead_imports_what_reading_here_imports(
        two_stores, tmp_path, monkeypatch):
    from mailer.store import mailchimp_import
    from tests.mailchimp_export import write_large_export

    export = tmp_path / "audience.zip"
    write_large_export(export, 5_000)  # three files (subscribed, unsubscribed, cleaned)
    here, ahead = two_stores
    monkeypatch.setattr(mailchimp_import, "READ_AHEAD_LINES", 10**9)
    read_here = mailchimp_import.import_mailchimp(here, export, secret=SECRET)
    monkeypatch.setattr(mailchimp_import, "READ_AHEAD_LINES", 0)
    told: list[int] = []
    read_ahead_report = mailchimp_import.import_mailchimp(ahead, export, secret=SECRET,
                                                          on_rows=told.append)

    assert read_ahead_report.as_dict() == read_here.as_dict()
    assert read_here.rows == 5_000 and sum(read_here.added.values()) > 4_000
    assert _rows_of(ahead) == _rows_of(here)
    assert sum(told) == 5_000
    assert not multiprocessing.active_children()
