"""subscriber identity: ids never reused, one row per address whatever its case

Unsubscribe links never expire and name a subscriber by id. Plain SQLite hands the highest
rowid out again once its row is deleted (``mailer subscribers forget``), so an old link of a
forgotten reader would unsubscribe whoever signed up next. AUTOINCREMENT rules that out, as
PostgreSQL's sequences already do. SQLite cannot alter a table's key in place: the table is
rebuilt with every row, index and id kept (store.db.upgrade turns foreign keys off around the
rebuild, so the change history that cascades from a subscriber is not deleted with the old
table).

``Ann@example.org`` and ``ann@example.org`` reach the same reader almost everywhere; a unique
index on ``lower(email)`` keeps them from becoming two rows that each get the newsletter.
(Stored addresses are ASCII, so ``lower`` folds them fully on SQLite and PostgreSQL alike.)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_LEFTOVER = "_alembic_tmp_subscriber"
_LOWER_INDEX = "ux_subscriber_email_lower"


def _rebuild_subscriber(autoincrement: bool) -> None:
    # A rebuild interrupted before its commit may leave an empty temporary table behind;
    # drop it so a re-run can proceed.
    op.execute(f"DROP TABLE IF EXISTS {_LEFTOVER}")
    with op.batch_alter_table(
        "subscriber", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_subscriber(autoincrement=True)
    op.create_index(_LOWER_INDEX, "subscriber", [sa.text("lower(email)")], unique=True)


def downgrade() -> None:
    op.drop_index(_LOWER_INDEX, table_name="subscriber")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_subscriber(autoincrement=False)
