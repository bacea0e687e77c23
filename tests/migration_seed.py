"""A database as the first release (revision 0001) left it, for migration and backup tests."""

from __future__ import annotations

from sqlalchemy import text

from mailer.store.db import make_engine, upgrade


NOW = "2026-01-05 10:00:00.000000"


def fill_at_first_revision(url: str) -> None:
    """A subscribers.db as the first release left it: readers, their history, a sent issue."""
    engine = make_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        for n in range(1, 31):
            connection.execute(text(
                "INSERT INTO subscriber (id, email, status, created_at, updated_at, source) "
                "VALUES (:id, :email, 'active', :now, :now, 'import')"),
                {"id": n * 3, "email": f"reader{n}@example.org", "now": NOW})
            connection.execute(text(
                "INSERT INTO subscriber_change (subscriber_id, at, to_status, source) "
                "VALUES (:id, :now, 'active', 'import')"), {"id": n * 3, "now": NOW})
        connection.execute(text(
            "INSERT INTO campaign (id, issue_number, subject, status, transport, content_sha256,"
            " created_at) VALUES (1, 630, 'TWiR 630', 'finished', 'outbox', 'abc', :now)"),
            {"now": NOW})
        connection.execute(text(
            "INSERT INTO delivery (campaign_id, subscriber_id, email, status, attempts) "
            "SELECT 1, id, email, 'sent', 1 FROM subscriber"))
    engine.dispose()
