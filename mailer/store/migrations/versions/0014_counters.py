"""counters: the figures of `mailer stats` and the console kept on write (issue 23 §1)

Three small tables hold what the readers used to count row by row on every request:

- ``campaign_counts``: per campaign, the ledger's rows by status, delivered, bounced (hard,
  soft, undetermined), complained, and recipients who unsubscribed after the campaign started
  (deliveries to SES's mailbox simulator left out, as ``stats.campaign_stats`` always did);
- ``subscriber_counts``: subscribers per status;
- ``week_counts``: per ISO week (Monday, UTC) sign-ups, imported, confirmed, unsubscribed,
  suppressed (``subscriber_reads.subscriber_growth``).

Database triggers keep them, in the same transaction as the row write, whichever code path
writes (the ledger, event application, imports, forget, bulk UPDATEs): each counts the row's
transition (old row out, new row in), never a call, and adds with ``UPDATE … SET n = n + d``
after an ``INSERT … ON CONFLICT DO NOTHING`` of a missing counter row, so concurrent writers on
PostgreSQL stay exact. The upgrade then fills them by ``mailer db recount`` (one transaction).

The trigger SQL is frozen here on purpose: a later change to a figure's definition is a new
migration (and ``mailer db recount`` shows whether rows and counters agree).

Revision ID: 0014_counters
Revises: 0013_address_change
Create Date: 2026-12-03 12:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0014_counters'
down_revision = '0013_address_change'
branch_labels = None
depends_on = None

CAMPAIGN_COLUMNS = (
    'recipients', 'queued', 'sending', 'sent', 'failed', 'skipped', 'unknown', 'delivered',
    'bounced', 'bounced_hard', 'bounced_soft', 'bounced_undetermined', 'complained',
    'unsubscribed',
)
WEEK_COLUMNS = ('new', 'imported', 'confirmed', 'unsubscribed', 'suppressed')
IMPORT_SOURCES = "('import', 'mailchimp')"  # mailer.domain.IMPORT_SOURCES, frozen here
SIMULATOR = "'%@simulator.amazonses.com'"  # mailer.wire.SIMULATOR_DOMAIN


def _delivery_conditions(r: str) -> dict[str, str]:
    """When a delivery row ``r`` (NEW or OLD) counts in each campaign column."""
    bounced = f"{r}.bounced_at IS NOT NULL"
    return {
        'recipients': 'TRUE',
        **{status: f"{r}.status = '{status}'"
           for status in ('queued', 'sending', 'sent', 'failed', 'skipped', 'unknown')},
        'delivered': f"{r}.delivered_at IS NOT NULL",
        'bounced': bounced,
        'bounced_hard': f"{bounced} AND {r}.bounce_type = 'permanent'",
        'bounced_soft': f"{bounced} AND {r}.bounce_type = 'transient'",
        'bounced_undetermined':
            f"{bounced} AND ({r}.bounce_type IS NULL OR {r}.bounce_type = 'undetermined')",
        'complained': f"{r}.complained_at IS NOT NULL",
    }


def _one(condition: str) -> str:
    return f"(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _delivery_term(r: str, column: str) -> str:
    return _one(f"lower({r}.email) NOT LIKE {SIMULATOR} AND {_delivery_conditions(r)[column]}")


def _campaign_start(c: str) -> str:
    return f"coalesce({c}.started_at, {c}.created_at)"


def _unsubscribed_since(subscriber: str, campaign: str, exclude: str = '') -> str:
    """Whether the subscriber has an unsubscribe change at or after the campaign's start."""
    return (f"EXISTS (SELECT 1 FROM subscriber_change sc WHERE sc.subscriber_id = {subscriber}"
            f" AND sc.to_status = 'unsubscribed' AND sc.at >= {_campaign_start(campaign)}{exclude})")


def _week(dialect: str, value: str) -> str:
    if dialect == 'postgresql':
        return f"to_char(date_trunc('week', timezone('UTC', {value})), 'YYYY-MM-DD')"
    return f"date({value}, 'weekday 0', '-6 days')"


def _change_conditions(r: str) -> dict[str, str]:
    imported = f"{r}.from_status IS NULL AND {r}.source IN {IMPORT_SOURCES}"
    here = f"NOT ({imported})"
    return {
        'imported': f"{imported} AND {r}.to_status = 'active'",
        'confirmed': f"{here} AND {r}.to_status = 'active'",
        'unsubscribed': f"{here} AND {r}.to_status = 'unsubscribed'",
        'suppressed': f"{here} AND {r}.to_status IN ('bounced', 'complained')",
    }


def _signed_up_here(r: str) -> str:
    return f"({r}.source IS NULL OR {r}.source NOT IN {IMPORT_SOURCES})"


def statements(dialect: str) -> dict[str, list[str]]:
    """Per trigger (table, event): the statements its body runs, in order."""
    upsert_campaign = ("INSERT INTO campaign_counts (campaign_id) VALUES ({r}.campaign_id) "
                       "ON CONFLICT DO NOTHING")
    delivery_columns = [c for c in CAMPAIGN_COLUMNS if c != 'unsubscribed']

    def campaign_update(sign_terms: list[tuple[str, str]], r: str) -> str:
        sets = []
        for column in delivery_columns:
            delta = ' '.join(f"{sign} {_delivery_term(row, column)}" for sign, row in sign_terms)
            sets.append(f"{column} = campaign_counts.{column} {delta}")
        # a recipient who had unsubscribed after the campaign began comes (or goes) with the row
        delta = ' '.join(
            f"{sign} (SELECT {_one(_unsubscribed_since(f'{row}.subscriber_id', 'c'))} "
            f"FROM campaign c WHERE c.id = {row}.campaign_id)"
            for sign, row in sign_terms if len(sign_terms) == 1)
        if delta:
            sets.append(f"unsubscribed = campaign_counts.unsubscribed {delta}")
        return f"UPDATE campaign_counts SET {', '.join(sets)} WHERE campaign_id = {r}.campaign_id"

    def unsubscribed_change(sign: str, r: str) -> str:
        # every campaign this subscriber received, begun at or before the change, where no
        # other unsubscribe change of theirs counts already
        return (
            f"UPDATE campaign_counts SET unsubscribed = campaign_counts.unsubscribed {sign} 1 "
            f"WHERE campaign_id IN "
            f"(SELECT d.campaign_id FROM delivery d JOIN campaign c ON c.id = d.campaign_id "
            f"WHERE d.subscriber_id = {r}.subscriber_id AND {r}.at >= {_campaign_start('c')} "
            f"AND NOT {_unsubscribed_since(f'{r}.subscriber_id', 'c', f' AND sc.id <> {r}.id')})"
        )

    def status_add(sign: str, r: str, only_if: str = '') -> list[str]:
        return [f"INSERT INTO subscriber_counts (status) SELECT {r}.status WHERE TRUE{only_if} "
                "ON CONFLICT DO NOTHING",
                f"UPDATE subscriber_counts SET n = subscriber_counts.n {sign} 1 WHERE status = {r}.status{only_if}"]

    def week_add(column_terms: dict[str, str], sign: str, r: str, at: str) -> list[str]:
        week = _week(dialect, f"{r}.{at}")
        # columns qualified: PL/pgSQL would read a bare "new" as its NEW row
        sets = ', '.join(f"{c} = week_counts.{c} {sign} {_one(cond)}" for c, cond in column_terms.items())
        return [f"INSERT INTO week_counts (week) VALUES ({week}) ON CONFLICT DO NOTHING",
                f"UPDATE week_counts SET {sets} WHERE week = {week}"]

    moved = ' AND OLD.status <> NEW.status'
    recount_unsubscribed = (
        "UPDATE campaign_counts SET unsubscribed = (SELECT count(DISTINCT d.subscriber_id) "
        "FROM delivery d JOIN campaign c ON c.id = d.campaign_id WHERE d.campaign_id = NEW.id "
        f"AND {_unsubscribed_since('d.subscriber_id', 'c')}) WHERE campaign_id = NEW.id")
    return {
        'delivery_insert': [upsert_campaign.format(r='NEW'), campaign_update([('+', 'NEW')], 'NEW')],
        'delivery_delete': [campaign_update([('-', 'OLD')], 'OLD')],
        'delivery_update': [campaign_update([('+', 'NEW'), ('-', 'OLD')], 'NEW')],
        'change_insert': week_add(_change_conditions('NEW'), '+', 'NEW', 'at')
            + [f"{unsubscribed_change('+', 'NEW')} AND NEW.to_status = 'unsubscribed'"],
        'change_delete': week_add(_change_conditions('OLD'), '-', 'OLD', 'at')
            + [f"{unsubscribed_change('-', 'OLD')} AND OLD.to_status = 'unsubscribed'"],
        'subscriber_insert': status_add('+', 'NEW')
            + week_add({'new': _signed_up_here('NEW')}, '+', 'NEW', 'created_at'),
        'subscriber_delete': status_add('-', 'OLD')
            + week_add({'new': _signed_up_here('OLD')}, '-', 'OLD', 'created_at'),
        # a row that changed only its source or time leaves the status rows alone (no lock)
        'subscriber_update': status_add('-', 'OLD', moved) + status_add('+', 'NEW', moved)
            + week_add({'new': _signed_up_here('OLD')}, '-', 'OLD', 'created_at')
            + week_add({'new': _signed_up_here('NEW')}, '+', 'NEW', 'created_at'),
        'campaign_update': [recount_unsubscribed],
    }


TRIGGERS = {  # name: (table, event, WHEN on SQLite / IF on PostgreSQL)
    'delivery_insert': ('delivery', 'INSERT', None),
    'delivery_delete': ('delivery', 'DELETE', None),
    'delivery_update': ('delivery', 'UPDATE OF status, delivered_at, bounced_at, bounce_type, '
                        'complained_at, email', None),
    'change_insert': ('subscriber_change', 'INSERT', None),
    'change_delete': ('subscriber_change', 'DELETE', None),
    'subscriber_insert': ('subscriber', 'INSERT', None),
    'subscriber_delete': ('subscriber', 'DELETE', None),
    'subscriber_update': ('subscriber', 'UPDATE OF status, source, created_at',
                          'OLD.status IS DISTINCT FROM NEW.status OR OLD.source IS DISTINCT FROM '
                          'NEW.source OR OLD.created_at IS DISTINCT FROM NEW.created_at'),
    'campaign_update': ('campaign', 'UPDATE OF started_at, created_at',
                        'OLD.started_at IS DISTINCT FROM NEW.started_at '
                        'OR OLD.created_at IS DISTINCT FROM NEW.created_at'),
}


def _create_triggers(dialect: str) -> None:
    bodies = statements(dialect)
    for name, (table, event, when) in TRIGGERS.items():
        trigger = f"counters_{name}"
        if dialect == 'postgresql':
            body = ';\n'.join(bodies[name]) + ';'
            if when:
                body = f"IF {when} THEN\n{body}\nEND IF;"
            op.execute(f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                       f"BEGIN\n{body}\nRETURN NULL;\nEND $$")
            op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON {table} FOR EACH ROW "
                       f"EXECUTE FUNCTION {trigger}()")
        else:
            sqlite_when = f" WHEN {when.replace('IS DISTINCT FROM', 'IS NOT')}" if when else ''
            body = ';\n'.join(bodies[name]) + ';'
            op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON {table} FOR EACH ROW"
                       f"{sqlite_when}\nBEGIN\n{body}\nEND")


def upgrade() -> None:
    zero = {'nullable': False, 'server_default': '0'}
    op.create_table(
        'campaign_counts',
        sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('campaign.id'), primary_key=True,
                  autoincrement=False),
        *[sa.Column(name, sa.Integer(), **zero) for name in CAMPAIGN_COLUMNS],
    )
    op.create_table(
        'subscriber_counts',
        sa.Column('status', sa.String(16), primary_key=True),
        sa.Column('n', sa.Integer(), **zero),
    )
    op.create_table(
        'week_counts',
        sa.Column('week', sa.String(10), primary_key=True),  # the Monday, YYYY-MM-DD
        *[sa.Column(name, sa.Integer(), **zero) for name in WEEK_COLUMNS],
    )
    dialect = op.get_bind().dialect.name
    _create_triggers(dialect)
    from sqlalchemy.orm import Session

    from mailer.reads.counters import recount
    recount(Session(bind=op.get_bind()))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, (table, _event, _when) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS counters_{name}"
                   + (f" ON {table}" if dialect == 'postgresql' else ''))
        if dialect == 'postgresql':
            op.execute(f"DROP FUNCTION IF EXISTS counters_{name}()")
    for table in ('week_counts', 'subscriber_counts', 'campaign_counts'):
        op.drop_table(table)
