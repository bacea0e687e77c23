"""issue hold and timeline: editors hold an issue from its preview (issue 25 §2)

``issue_hold`` has a row while an issue is held (the primary key on the issue number: one
hold at a time; a release deletes it). ``issue_event`` is the issue's timeline: found, preview
and correction sent, held, released, by whom. ``issue_preview`` learns the version it showed
(the rendered HTML's hash, so a changed issue gets a correction) and the send moment it named.

Revision ID: 0010_issue_hold
Revises: 0007_rate_limit_hits
Create Date: 2026-12-02 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0010_issue_hold'
down_revision = '0007_rate_limit_hits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'issue_hold',
        sa.Column('issue_number', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('held_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column('held_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('issue_number'),
    )
    op.create_table(
        'issue_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('issue_number', sa.Integer(), nullable=False),
        sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_issue_event_issue_number', 'issue_event', ['issue_number'])
    with op.batch_alter_table('issue_preview') as batch:
        batch.add_column(sa.Column('content_sha256', sqlmodel.sql.sqltypes.AutoString(length=64),
                                   nullable=True))
        batch.add_column(sa.Column('planned_send_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('issue_preview') as batch:
        batch.drop_column('planned_send_at')
        batch.drop_column('content_sha256')
    op.drop_index('ix_issue_event_issue_number', table_name='issue_event')
    op.drop_table('issue_event')
    op.drop_table('issue_hold')
