"""address change: a reader's own page asks to move the subscription to a new address (issue 26)

``subscriber.new_email``, ``new_email_nonce``, ``new_email_requested_at``: the pending change,
kept on the reader's one row (never a second subscriber row) until the link mailed to the new
address is clicked; the old address keeps getting the newsletter until then.

Revision ID: 0013_address_change
Revises: 0012_reader_pause
Create Date: 2026-12-03 12:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0013_address_change'
down_revision = '0012_reader_pause'
branch_labels = None
depends_on = None

COLUMNS = ('new_email', 'new_email_nonce', 'new_email_requested_at')


# Plain ALTER TABLE on both databases, as 0012: a batch copy of ``subscriber`` would lose its
# expression index on lower(email) (0002) on SQLite.
def upgrade() -> None:
    op.add_column('subscriber', sa.Column('new_email', sqlmodel.sql.sqltypes.AutoString(length=320),
                                          nullable=True))
    op.add_column('subscriber', sa.Column('new_email_nonce',
                                          sqlmodel.sql.sqltypes.AutoString(length=64),
                                          nullable=True))
    op.add_column('subscriber', sa.Column('new_email_requested_at',
                                          sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.execute(f'ALTER TABLE subscriber DROP COLUMN {column}')
