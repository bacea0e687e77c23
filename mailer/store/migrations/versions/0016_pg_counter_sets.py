"""pg counter sets: on PostgreSQL the counters are kept per statement and added at commit (issue 23)

0014's row-level triggers update one counter row (the campaign's, the status's, the week's) for
every row written. On PostgreSQL each of those updates leaves a new version of the counter row
that every later update in the same transaction walks past (the old versions cannot be pruned
while it runs), so a transaction of N rows costs O(N²): 291 µs a row at 5,000 rows, 885 µs at
20,000, and ``mailer send`` queueing 100,000 readers took minutes. And each transaction locked
its counter rows from its first write to its commit, in the order it wrote: a bounce applied
(campaign row, then status rows) and a reader leaving (status rows, then campaign row) at once
deadlocked (tests/test_counters.py, several writers at once).

Here, on PostgreSQL:

- each trigger fires once per statement (``FOR EACH STATEMENT``), reads the statement's rows
  from its transition tables (``REFERENCING NEW TABLE AS new_rows``, ``OLD TABLE AS
  old_rows``) and appends the statement's deltas, one row per key, to a delta table
  (``campaign_count_deltas``, ``subscriber_count_deltas``, ``week_count_deltas``: the counter
  table's columns and the transaction's id). An append takes no lock any other writer waits for;
- at commit a deferred constraint trigger on the delta tables folds the transaction's deltas
  into the counters (``counters_fold``): one ``INSERT … ON CONFLICT DO UPDATE SET n = n +
  excluded.n`` per table, the keys in order, the tables always in the same order. So one new
  version per counter row and transaction, whatever its size, and every transaction locks
  counter rows in one global order, only while it commits: no deadlock through the counters.

Exact with concurrent writers under READ COMMITTED: ``ON CONFLICT DO UPDATE`` adds to the row
as committed (it waits for a concurrent folder of the same key, then adds to its result), and a
transaction's deltas, never visible to another one, are gone with it when it rolls back (a
rolled back savepoint takes its own). The delta tables are UNLOGGED: their rows never outlive
their transaction, and a crash empties them. ``mailer db recount`` locks the counter tables:
a commit folding meanwhile waits, then adds rows the recount could not see.

The writers that write many rows do it in multi-row statements: the send start's INSERT …
SELECT, the imports' multi-row VALUES (``subscriber_files.insert_rows``), and SQLAlchemy's
executemany as multi-row INSERTs on PostgreSQL (``mailer.store.db.make_engine``).
PostgreSQL allows no column list (``UPDATE OF …``) on a trigger with transition tables: the
update triggers fire on every UPDATE, and a key whose deltas are all zero (a claim, a
heartbeat) appends nothing. The figures are 0014's, from 0014's frozen terms.

Weighed and not taken: statement-level triggers adding straight to the counter rows (the O(N²)
goes for multi-row statements, but not for a transaction of many single-row statements, and the
deadlocks stay); deltas summed on every read (each read becomes a scan, and a fold job must run).

SQLite keeps 0014's row-level triggers: there an update in place costs the same at any
transaction size, and one writer at a time cannot deadlock (benchmarks/scale.py before/after).

The upgrade swaps the triggers and recounts (one transaction), so a database upgraded with rows
starts exact; the downgrade puts 0014's row triggers back, and recounts.

Revision ID: 0016_pg_counter_sets
Revises: 0015_reader_search
Create Date: 2026-12-03 15:30:00
"""
import importlib.util
from pathlib import Path

from alembic import op

revision = '0016_pg_counter_sets'
down_revision = '0015_reader_search'
branch_labels = None
depends_on = None


def _migration(name: str):
    """Another revision's module (the versions folder is no package): 0014's frozen terms."""
    spec = importlib.util.spec_from_file_location(f"mailer_migration_{name}",
                                                  Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


C14 = _migration('0014_counters')
NEW, OLD = 'new_rows', 'old_rows'
DELIVERY_COLUMNS = [c for c in C14.CAMPAIGN_COLUMNS if c != 'unsubscribed']


def _week(value: str) -> str:
    return C14._week('postgresql', value)


COUNTERS = {  # counter table: (key, columns), in the order a commit folds them
    'campaign_counts': ('campaign_id', list(C14.CAMPAIGN_COLUMNS)),
    'subscriber_counts': ('status', ['n']),
    'week_counts': ('week', list(C14.WEEK_COLUMNS)),
}
DELTAS = {table: f"{table[:-1]}_deltas" for table in COUNTERS}  # campaign_count_deltas…
# a campaign deleted in the transaction takes its deltas with it (its counter row went too)
STILL_THERE = {'campaign_counts':
               " WHERE EXISTS (SELECT 1 FROM campaign c WHERE c.id = gone.campaign_id)"}


def _grouped(key: str, columns: list[str], source: str) -> str:
    """``source``'s rows (key, then ``columns``) summed per key, in key order, leaving out a
    key whose sums are all zero."""
    # the sums are named v0, v1…: PL/pgSQL would read a bare "new" as its NEW row
    values = [f"v{i}" for i in range(len(columns))]
    sums = ', '.join(f"sum(d.{v})" for v in values)
    nonzero = ' OR '.join(f"sum(d.{v}) <> 0" for v in values)
    return (f"SELECT d.k, {sums} FROM (\n{source}\n) AS d (k, {', '.join(values)})\n"
            f"GROUP BY d.k HAVING {nonzero} ORDER BY d.k")


def grouped_add(table: str, key: str, columns: list[str], parts: list[str]) -> str:
    """Append the summed rows of ``parts`` (SELECTs of key, then ``columns``) to ``table``'s
    deltas, one row per key."""
    return (f"INSERT INTO {DELTAS[table]} ({key}, {', '.join(columns)})\n"
            + _grouped(key, columns, '\nUNION ALL\n'.join(parts)))


def fold(table: str) -> str:
    """Move this transaction's deltas of ``table`` into it."""
    key, columns = COUNTERS[table]
    added = ', '.join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    deltas = DELTAS[table]
    returned = ', '.join(f"{deltas}.{c}" for c in [key, *columns])  # qualified: no NEW for "new"
    return (f"WITH gone AS (DELETE FROM {deltas} WHERE tx = txid_current() "
            f"RETURNING {returned})\n"
            f"INSERT INTO {table} ({key}, {', '.join(columns)})\n"
            + _grouped(key, columns, f"SELECT * FROM gone{STILL_THERE.get(table, '')}")
            + f"\nON CONFLICT ({key}) DO UPDATE SET {added}")


def _delivery_rows(sign: str, rows: str, with_unsubscribed: bool) -> str:
    # 0014's terms, with the mailbox simulator test made once a row instead of once a column
    conditions = C14._delivery_conditions('r')
    terms = [f"{sign}{C14._one(f'r.counted AND {conditions[c]}')}" for c in DELIVERY_COLUMNS]
    counted = (f"(SELECT x.*, lower(x.email) NOT LIKE {C14.SIMULATOR} AS counted "
               f"FROM {rows} x) AS r")
    if not with_unsubscribed:
        return f"SELECT r.campaign_id, {', '.join(terms)} FROM {counted}"
    # a recipient who had unsubscribed after the campaign began comes (or goes) with the row
    unsubscribed = C14._one(C14._unsubscribed_since('r.subscriber_id', 'c'))
    return (f"SELECT r.campaign_id, {', '.join(terms)}, {sign}{unsubscribed} "
            f"FROM {counted} JOIN campaign c ON c.id = r.campaign_id")


def _unsubscribed_change(sign: str, rows: str, exclude: str) -> str:
    """Per campaign, the recipients whose first counted unsubscribe is among ``rows``: each
    (campaign, recipient) once, where the recipient got the campaign, the change is at or after
    its start, and no other unsubscribe change of theirs (``exclude`` leaves out ``rows``
    themselves when they are still in the table) counts already."""
    pairs = (f"SELECT DISTINCT d.campaign_id, d.subscriber_id FROM {rows} r "
             f"JOIN delivery d ON d.subscriber_id = r.subscriber_id "
             f"JOIN campaign c ON c.id = d.campaign_id "
             f"WHERE r.to_status = 'unsubscribed' AND r.at >= {C14._campaign_start('c')} "
             f"AND NOT {C14._unsubscribed_since('d.subscriber_id', 'c', exclude)}")
    return (f"INSERT INTO {DELTAS['campaign_counts']} (campaign_id, unsubscribed)\n"
            f"SELECT campaign_id, {sign}count(*) FROM ({pairs}) AS p GROUP BY campaign_id")


def _change_weeks(sign: str, rows: str) -> str:
    conditions = C14._change_conditions('r')
    terms = ', '.join(f"{sign}{C14._one(condition)}" for condition in conditions.values())
    return grouped_add('week_counts', 'week', list(conditions),
                       [f"SELECT {_week('r.at')}, {terms} FROM {rows} r"])


def _statuses(parts: list[tuple[str, str]]) -> str:
    return grouped_add('subscriber_counts', 'status', ['n'],
                       [f"SELECT r.status, {sign}1 FROM {rows} r" for sign, rows in parts])


def _sign_ups(parts: list[tuple[str, str]]) -> str:
    return grouped_add('week_counts', 'week', ['new'], [
        f"SELECT {_week('r.created_at')}, {sign}{C14._one(C14._signed_up_here('r'))} FROM {rows} r"
        for sign, rows in parts])


def statements() -> dict[str, list[str]]:
    """Per trigger (0014's names): the statements its body runs, in order."""
    unsubscribed = C14._unsubscribed_since('d.subscriber_id', 'c')
    # a campaign whose start moved: its unsubscribed counted again, added as the difference
    # from the counter as this statement sees it (this transaction's own deltas included)
    deltas = DELTAS['campaign_counts']
    campaign_moved = (
        f"INSERT INTO {deltas} (campaign_id, unsubscribed)\n"
        f"SELECT m.id, (SELECT count(DISTINCT d.subscriber_id) FROM delivery d "
        f"JOIN campaign c ON c.id = d.campaign_id WHERE d.campaign_id = m.id AND {unsubscribed})"
        f" - coalesce((SELECT cc.unsubscribed FROM campaign_counts cc "
        f"WHERE cc.campaign_id = m.id), 0)"
        f" - coalesce((SELECT sum(x.unsubscribed) FROM {deltas} x "
        f"WHERE x.tx = txid_current() AND x.campaign_id = m.id), 0)\n"
        f"FROM (SELECT n.id FROM {NEW} n JOIN {OLD} o ON o.id = n.id "
        f"WHERE o.started_at IS DISTINCT FROM n.started_at "
        f"OR o.created_at IS DISTINCT FROM n.created_at) AS m")
    delivery_all = DELIVERY_COLUMNS + ['unsubscribed']
    return {
        'delivery_insert': [grouped_add('campaign_counts', 'campaign_id', delivery_all,
                                        [_delivery_rows('+', NEW, True)])],
        'delivery_delete': [grouped_add('campaign_counts', 'campaign_id', delivery_all,
                                        [_delivery_rows('-', OLD, True)])],
        'delivery_update': [grouped_add('campaign_counts', 'campaign_id', DELIVERY_COLUMNS,
                                        [_delivery_rows('+', NEW, False),
                                         _delivery_rows('-', OLD, False)])],
        'change_insert': [_change_weeks('+', NEW),
                          _unsubscribed_change('+', NEW, f" AND sc.id NOT IN (SELECT id FROM {NEW})")],
        'change_delete': [_change_weeks('-', OLD), _unsubscribed_change('-', OLD, '')],
        'subscriber_insert': [_statuses([('+', NEW)]), _sign_ups([('+', NEW)])],
        'subscriber_delete': [_statuses([('-', OLD)]), _sign_ups([('-', OLD)])],
        'subscriber_update': [_statuses([('+', NEW), ('-', OLD)]),
                              _sign_ups([('+', NEW), ('-', OLD)])],
        'campaign_update': [campaign_moved],
    }


def _transition_tables(event: str) -> str:
    return {'INSERT': f"NEW TABLE AS {NEW}", 'DELETE': f"OLD TABLE AS {OLD}",
            'UPDATE': f"OLD TABLE AS {OLD} NEW TABLE AS {NEW}"}[event]


# Whether this transaction has deltas to fold: set by every statement trigger, cleared by the
# fold. The fold runs once per delta row at commit (a constraint trigger is per row): every run
# after the first returns at once, instead of looking for deltas again (its index would walk
# past every delta row the first run deleted: N runs of N entries). Local to the transaction,
# and undone with a savepoint rolled back, as the deltas are.
PENDING = "mailer.counter_deltas"
MARK_PENDING = f"PERFORM set_config('{PENDING}', 'on', true)"
FOLD_ONCE = (f"IF current_setting('{PENDING}', true) IS DISTINCT FROM 'on' THEN RETURN NULL; "
             f"END IF;\nPERFORM set_config('{PENDING}', 'off', true)")


def _plpgsql(name: str, body: list[str]) -> str:
    return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{';'.join(body)};\nRETURN NULL;\nEND $$")


def create_delta_tables() -> None:
    for table, deltas in DELTAS.items():
        op.execute(f"CREATE UNLOGGED TABLE {deltas} (LIKE {table} INCLUDING DEFAULTS, "
                   f"tx bigint NOT NULL DEFAULT txid_current())")
        op.execute(f"CREATE INDEX ix_{deltas}_tx ON {deltas} (tx)")
    op.execute(_plpgsql('counters_fold', [FOLD_ONCE, *(fold(table) for table in COUNTERS)]))
    for deltas in DELTAS.values():
        op.execute(f"CREATE CONSTRAINT TRIGGER counters_fold AFTER INSERT ON {deltas} "
                   f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION counters_fold()")


def create_statement_triggers() -> None:
    for name, body in statements().items():
        table, event, _when = C14.TRIGGERS[name]
        event = event.split()[0]  # no column list with transition tables
        trigger = f"counters_{name}"
        op.execute(_plpgsql(trigger, [*body, MARK_PENDING]))
        op.execute(f"CREATE TRIGGER {trigger} AFTER {event} ON {table} "
                   f"REFERENCING {_transition_tables(event)} FOR EACH STATEMENT "
                   f"EXECUTE FUNCTION {trigger}()")


def drop_triggers() -> None:
    for name, (table, _event, _when) in C14.TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS counters_{name} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS counters_{name}()")


def drop_delta_tables() -> None:
    for deltas in DELTAS.values():
        op.execute(f"DROP TABLE IF EXISTS {deltas}")
    op.execute("DROP FUNCTION IF EXISTS counters_fold()")


def _recount() -> None:
    from sqlalchemy.orm import Session

    from mailer.reads.counters import recount
    recount(Session(bind=op.get_bind()))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    drop_triggers()
    create_delta_tables()
    create_statement_triggers()
    _recount()


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    drop_triggers()
    drop_delta_tables()
    C14._create_triggers('postgresql')
    _recount()
