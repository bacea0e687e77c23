"""link counts: an issue's link table and its hourly click counters (issue 25 §1)

``issue_link`` holds what each ``/l/<issue>/<n>`` stands for (its URL, words and section), written
when a campaign starts. ``link_clicks`` holds one counter per (issue, link, hour, machine): a click
adds one to its hour's row, never a row per request, and nothing about the reader is kept.

Revision ID: 0011_link_counts
Revises: 0010_issue_hold
Create Date: 2026-12-03 08:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0011_link_counts'
down_revision = '0010_issue_hold'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'issue_link',
        sa.Column('issue_number', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('n', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('section', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('issue_number', 'n'),
    )
    op.create_table(
        'link_clicks',
        sa.Column('issue_number', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('n', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('machine', sa.Boolean(), nullable=False),
        sa.Column('clicks', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('issue_number', 'n', 'hour', 'machine'),
    )


def downgrade() -> None:
    op.drop_table('link_clicks')
    op.drop_table('issue_link')
