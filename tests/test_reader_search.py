"""Finding readers by part of an address (issue 23): the console's search answers from a trigram
index (SQLite FTS5, PostgreSQL pg_trgm) and finds exactly what the plain scan finds, through
every change of an address."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlmodel import Session

from mailer.domain import SubscriberStatus
from mailer.store import subscribers
from mailer.reads.reader_records import list_readers
from tests.fakes import add_readers

ADDRESSES = ["ann_lee@example.org", "annalee@example.org", "bob.smith@gmail.com",
             "Carol.Smith@Outlook.com", "dave%x@example.net", "smithers@example.org"]


def found(engine, needle: str, **kwargs) -> list[str]:
    with Session(engine) as db:
        return [reader.email for reader in list_readers(db, needle, **kwargs).readers]


def scanned(engine, needle: str) -> list[str]:
    """What a scan of every row finds: the answer the index must give."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT email FROM subscriber ORDER BY id DESC")).all()
    exact = [email for (email,) in rows if email.lower() == needle.lower()]
    return exact + [email for (email,) in rows
                    if needle.lower() in email.lower() and email.lower() != needle.lower()]


@pytest.mark.parametrize("needle", ["smith", "SMITH", "ann_", "nn_l", "e%x", "gmail.com",
                                    "lee@", "an", "x", "bob.smith@gmail.com", "nobody-here"])
def test_the_indexed_search_finds_what_a_scan_finds(engine, needle):
    add_readers(engine, *ADDRESSES)
    assert found(engine, needle) == scanned(engine, needle)


def test_sqlite_answers_from_the_trigram_index(engine):
    with engine.connect() as connection:
        plan = connection.execute(text(
            "EXPLAIN QUERY PLAN SELECT rowid FROM subscriber_search "
            "WHERE email LIKE '%smith%' ORDER BY rowid DESC")).all()
    assert any("VIRTUAL TABLE" in str(step) for step in plan), plan


def test_a_session_bound_to_one_connection_still_answers_from_the_index(engine):
    # the index check names the database by its engine's URL, which a connection has not
    add_readers(engine, *ADDRESSES)
    with engine.connect() as connection, Session(bind=connection) as db:
        assert [reader.email for reader in list_readers(db, "smith").readers] == scanned(
            engine, "smith")


def test_an_underscore_is_a_character_not_a_wildcard(engine):
    add_readers(engine, *ADDRESSES)
    assert found(engine, "ann_") == ["ann_lee@example.org"]  # not annalee


def test_a_changed_or_erased_address_is_found_by_its_new_spelling_only(engine, settings):
    add_readers(engine, *ADDRESSES)
    with Session(engine) as db:
        bob = subscribers.get_by_email(db, "bob.smith@gmail.com")
        bob.email = "robert.jones@gmail.com"
        db.add(bob)
        db.commit()
        subscribers.forget_subscriber(db, "smithers@example.org", secret=settings.secret_key)
        db.commit()
    assert found(engine, "smith") == ["Carol.Smith@Outlook.com"]
    assert found(engine, "jones") == ["robert.jones@gmail.com"]
    assert found(engine, "smithers") == []


def test_status_and_paging_apply_through_the_index(engine):
    add_readers(engine, *[f"reader{n:03d}@example.org" for n in range(120)])
    add_readers(engine, "reader-left@example.org", status=SubscriberStatus.UNSUBSCRIBED.value)
    first = list_page(engine, "reader")
    assert len(first.readers) == 50 and first.older is not None
    second = list_page(engine, "reader", before=first.older)
    assert {r.id for r in first.readers}.isdisjoint(r.id for r in second.readers)
    assert max(r.id for r in second.readers) < min(r.id for r in first.readers)
    assert found(engine, "reader", status="unsubscribed") == ["reader-left@example.org"]


def list_page(engine, needle: str, **kwargs):
    with Session(engine) as db:
        page = list_readers(db, needle, **kwargs)
        db.expunge_all()
    return page


@pytest.mark.postgres
def test_postgres_has_the_trigram_index_and_the_same_answers(pg_url):
    from mailer.store.db import get_engine

    engine = get_engine(pg_url)
    add_readers(engine, *ADDRESSES)
    with engine.connect() as connection:
        index = connection.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_subscriber_email_trgm'")).scalar()
    assert index is not None and "gin_trgm_ops" in index
    for needle in ("smith", "ann_", "e%x", "an"):
        assert found(engine, needle) == scanned(engine, needle)
