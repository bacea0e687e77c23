"""issue previews: each issue mailed once to the editors before its send

A table of its own rather than a campaign with one delivery: previews must never show in the
delivery stats, and the primary key on the issue number is what makes "once" hold when two cron
runs overlap.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'issue_preview',
        sa.Column('issue_number', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('provider_message_id', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('issue_number'),
    )


def downgrade() -> None:
    op.drop_table('issue_preview')
