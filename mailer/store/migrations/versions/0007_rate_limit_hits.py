"""rate_limit_hit: the web app's rate-limit counts, shared by every `mailer serve` process

The limits on sign-ups, failed operator log-ins and operator actions counted in process memory,
so `mailer serve` had to run as one process. One row per (limit, keyed hash of the client's
network, time bucket) with an atomic count; rows older than their window are pruned by the app.
No address is stored: the key is an HMAC under MAILER_SECRET_KEY.

Revision ID: 0007_rate_limit_hits
Revises: 0006
Create Date: 2026-12-02 14:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0007_rate_limit_hits'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_limit_hit',
        sa.Column('scope', sa.String(length=32), nullable=False),
        sa.Column('key_hash', sa.String(length=32), nullable=False),
        sa.Column('bucket', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'key_hash', 'bucket'),
    )
    op.create_index('ix_rate_limit_hit_bucket', 'rate_limit_hit', ['bucket'])


def downgrade() -> None:
    op.drop_index('ix_rate_limit_hit_bucket', table_name='rate_limit_hit')
    op.drop_table('rate_limit_hit')
