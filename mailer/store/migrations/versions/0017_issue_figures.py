"""issue figures: a finished send's timeline and per-domain counts kept, the list's closed weeks
kept, and an index over the rows provider events marked (issue 23: `stats --issue`, the
issue page and the overview counted every delivery of the issue, or half a year of the list,
on each request: 4.8 s and 2.3 s at a million)

- ``send_figures``: per campaign, the ledger's rows by status (from ``campaign_counts``) when
  its breakdowns below were counted; they hold while the counters still show those numbers;
- ``send_minutes``: per campaign and minute (UTC, ``YYYY-MM-DDTHH:MM``), the rows sent;
- ``send_domains``: per campaign and recipient domain, the rows and those sent.

Nothing keeps them on write: the read model (``reads.send_figures``) fills them once a send
has nothing queued or sending, and counts again when the counters moved.

- ``week_figures``: per closed ISO week (Monday, UTC), the overview's figures of the week
  (``reads.list_health.ListWeek`` but the list's size), and ``week_figures_mark``: the newest
  history and subscriber rows (and the erasures) when they were counted, so a read finds the
  weeks written since (``reads.week_figures``); ``ix_subscriber_created_at`` counts one week
  of sign-ups without reading the list.

``ix_delivery_marked``: a partial index of the rows not (yet) delivered, bounced or
complained about: after a send, a few per thousand; the per-domain delivered, bounced and
complained figures are counted from it.

Revision ID: 0017_issue_figures
Revises: 0016_pg_counter_sets
Create Date: 2026-12-03 15:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0017_issue_figures'
down_revision = '0016_pg_counter_sets'
branch_labels = None
depends_on = None

WEEK_COLUMNS = ('new', 'confirmed', 'unsubscribed', 'bounced', 'complained', 'imported', 'net',
                'signups', 'signups_confirmed', 'signups_pending')
MARK_COLUMNS = ('change_id', 'change_tail', 'subscriber_id', 'subscriber_tail', 'forgotten')
STATUS_COLUMNS = ('recipients', 'queued', 'sending', 'sent', 'failed', 'skipped', 'unknown')
# mailer.reads.send_figures.MARKED, frozen here: the query's condition must read the same
MARKED = "delivered_at IS NULL OR bounced_at IS NOT NULL OR complained_at IS NOT NULL"


def _campaign_key() -> sa.Column:
    return sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('campaign.id', ondelete='CASCADE'),
                     primary_key=True, autoincrement=False)


def upgrade() -> None:
    zero = {'nullable': False, 'server_default': '0'}
    op.create_table(
        'send_figures',
        _campaign_key(),
        *[sa.Column(name, sa.Integer(), **zero) for name in STATUS_COLUMNS],
        sa.Column('kept_at', sa.DateTime(), nullable=False),
    )
    op.create_table(
        'send_minutes',
        _campaign_key(),
        sa.Column('minute', sa.String(16), primary_key=True),
        sa.Column('sent', sa.Integer(), **zero),
    )
    op.create_table(
        'send_domains',
        _campaign_key(),
        sa.Column('domain', sa.String(320), primary_key=True),
        sa.Column('recipients', sa.Integer(), **zero),
        sa.Column('sent', sa.Integer(), **zero),
    )
    op.create_index('ix_delivery_marked', 'delivery', ['campaign_id'],
                    sqlite_where=sa.text(MARKED), postgresql_where=sa.text(MARKED))
    op.create_table(
        'week_figures',
        sa.Column('week', sa.String(10), primary_key=True),  # the Monday, YYYY-MM-DD
        *[sa.Column(name, sa.Integer(), **zero) for name in WEEK_COLUMNS],
    )
    op.create_table(
        'week_figures_mark',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),  # always 1
        *[sa.Column(name, sa.Integer(), **zero) for name in MARK_COLUMNS],
    )
    op.create_index('ix_subscriber_created_at', 'subscriber', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_subscriber_created_at', table_name='subscriber')
    op.drop_index('ix_delivery_marked', table_name='delivery')
    for table in ('week_figures_mark', 'week_figures', 'send_domains', 'send_minutes',
                  'send_figures'):
        op.drop_table(table)
