"""reader search: a trigram index over the addresses, so finding a reader by part of an address
is an index lookup instead of a scan of every reader (issue 23: 0.42 s at a million readers)

SQLite: ``subscriber_search``, an FTS5 table with the trigram tokenizer over ``subscriber.email``
(external content: it stores the trigrams, not a second copy of the addresses), kept by three
triggers on ``subscriber``. An FTS5 trigram table answers ``email LIKE '%part%'`` from its index
for a part of three characters or more. A SQLite older than 3.34 has no trigram tokenizer: the
table is then not made, and the search scans as before.

PostgreSQL: the ``pg_trgm`` extension and a GIN index on ``lower(email)``; a server where the
extension cannot be created (a managed one without it, a role without the right) keeps the scan.

A later migration that rebuilds ``subscriber`` on SQLite (a batch copy) drops the triggers: make
them again there, as ``upgrade`` does here.

Revision ID: 0015_reader_search
Revises: 0014_counters
Create Date: 2026-12-03 12:50:00
"""
import sqlite3

from alembic import op
import sqlalchemy as sa

revision = '0015_reader_search'
down_revision = '0014_counters'
branch_labels = None
depends_on = None

SQLITE_OBJECTS = [
    "CREATE VIRTUAL TABLE subscriber_search USING fts5(email, content='subscriber', "
    "content_rowid='id', tokenize='trigram', detail='none')",
    "CREATE TRIGGER subscriber_search_insert AFTER INSERT ON subscriber BEGIN "
    "INSERT INTO subscriber_search(rowid, email) VALUES (new.id, new.email); END",
    "CREATE TRIGGER subscriber_search_delete AFTER DELETE ON subscriber BEGIN "
    "INSERT INTO subscriber_search(subscriber_search, rowid, email) "
    "VALUES ('delete', old.id, old.email); END",
    "CREATE TRIGGER subscriber_search_update AFTER UPDATE OF email ON subscriber BEGIN "
    "INSERT INTO subscriber_search(subscriber_search, rowid, email) "
    "VALUES ('delete', old.id, old.email); "
    "INSERT INTO subscriber_search(rowid, email) VALUES (new.id, new.email); END",
    "INSERT INTO subscriber_search(subscriber_search) VALUES ('rebuild')",
]


def _sqlite_has_trigram() -> bool:
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='trigram')")
    except sqlite3.Error:
        return False
    finally:
        probe.close()
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        if _sqlite_has_trigram():
            for statement in SQLITE_OBJECTS:
                op.execute(statement)
        return
    if bind.dialect.name == "postgresql":
        try:
            with bind.begin_nested():  # a refusal must not abort the rest of the upgrade
                bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
                bind.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_subscriber_email_trgm "
                                     "ON subscriber USING gin (lower(email) gin_trgm_ops)"))
        except sa.exc.DBAPIError:
            pass


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS subscriber_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS subscriber_search")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_subscriber_email_trgm")
