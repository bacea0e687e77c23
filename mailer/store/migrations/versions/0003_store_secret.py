"""store_secret: the database's own random pepper for forget hashes

Forget hashes were keyed by MAILER_SECRET_KEY, so rotating that key (or a cron job run without
it) let a forgotten address be imported again. They are now keyed by a random pepper this
database keeps for itself, created on first use. Rows hashed the old way stay and are still
checked (with the current key and the old built-in ones) and are rewritten to the new hash
whenever their address comes by again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'store_secret',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('store_secret')
