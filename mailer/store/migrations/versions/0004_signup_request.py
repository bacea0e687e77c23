"""signup_request: sign-ups queued by the public form, and the counts behind its limits

Every ``POST /subscribe`` writes one row the same way whatever the address's state (so the answer
takes the same time for known and new addresses); the rows of the last hour limit confirmation
mails per mailbox, per domain and in total. Rows older than a day are pruned by the app.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signup_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("mailbox_key", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("at", "state", "mailbox_key", "domain"):
        op.create_index(f"ix_signup_request_{column}", "signup_request", [column])


def downgrade() -> None:
    for column in ("at", "state", "mailbox_key", "domain"):
        op.drop_index(f"ix_signup_request_{column}", table_name="signup_request")
    op.drop_table("signup_request")
