"""campaign: the reputation breaker's pause reason, time and figures; the canary sample

A campaign the breaker paused keeps why (``pause_reason``), when (``paused_at``) and the
figures it saw (sent, delivered, hard bounces, complaints) in plain columns, for `mailer
stats`, /admin and the next `mailer send --resume`, which watches only what arrives after them.
A canary send records its sample on the delivery rows (``canary``) and on the campaign its size
and until when its events are awaited.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_COLUMNS = (
    ("pause_reason", sa.Text()),
    ("paused_at", sqlmodel.sql.sqltypes.UTCDateTime()),
    ("breaker_sent", sa.Integer()),
    ("breaker_delivered", sa.Integer()),
    ("breaker_hard_bounces", sa.Integer()),
    ("breaker_complaints", sa.Integer()),
    ("canary_size", sa.Integer()),
    ("canary_until", sqlmodel.sql.sqltypes.UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("canary", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("canary")
    with op.batch_alter_table("campaign") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
