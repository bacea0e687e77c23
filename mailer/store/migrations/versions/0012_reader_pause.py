"""reader pause: a reader skips issues until a date they pick on their own page (issue 26)

``subscriber.paused_until``: while it is in the future, a new campaign records the reader's
ledger row as skipped ("paused by the reader") instead of queueing it, so the issues of the
window are skipped and counted apart, and the next issue after it is sent as usual.

Revision ID: 0012_reader_pause
Revises: 0011_link_counts
Create Date: 2026-12-03 08:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0012_reader_pause'
down_revision = '0011_link_counts'
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases (SQLite 3.35+ drops columns): a batch copy of
# ``subscriber`` would lose its expression index on lower(email) (0002) on SQLite.
def upgrade() -> None:
    op.add_column('subscriber', sa.Column('paused_until', sqlmodel.sql.sqltypes.UTCDateTime(),
                                          nullable=True))


def downgrade() -> None:
    op.execute('ALTER TABLE subscriber DROP COLUMN paused_until')
