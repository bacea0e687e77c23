"""The SQL of one issue's kept figures, as text: the store's reads run it through SQLAlchemy
(``text()``), ``mailer stats --issue`` on a current SQLite file through sqlite3 alone
(:mod:`mailer.reads.quick_counts`). One text, so both paths count the same way (issue 23:
importing SQLAlchemy and the models cost ``stats --issue`` more than its queries).

Parameters are named (``:name``), which both drivers take; a list of campaign ids becomes
``:c0, :c1, …`` (:func:`id_list`). Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from mailer.domain import BounceType, EventKind
from mailer.wire import SIMULATOR_DOMAIN

# The counters a campaign's kept breakdowns were counted at: they hold while these stay the
# same (mailer.reads.send_figures)
STATUS_KEY = ("recipients", "queued", "sending", "sent", "failed", "skipped", "unknown")
DOMAIN_COUNTS = ("recipients", "sent", "delivered", "bounced", "bounced_hard", "complained")
# migration 0017's ix_delivery_marked, written the same so the database reads from that index
MARKED = "delivered_at IS NULL OR bounced_at IS NOT NULL OR complained_at IS NOT NULL"
# SES's mailbox simulator (`mailer doctor --live`): tests, never part of an issue's figures
NOT_SIMULATOR = "lower(email) NOT LIKE :simulator"
SIMULATOR_PATTERN = f"%@{SIMULATOR_DOMAIN}"


def id_list(ids: list[int]) -> tuple[str, dict[str, int]]:
    """``:c0, :c1, …`` and its parameters, for ``IN (…)``."""
    return ", ".join(f":c{n}" for n in range(len(ids))), {f"c{n}": i for n, i in enumerate(ids)}


def _domain_of(dialect: str) -> str:
    if dialect == "postgresql":
        return "lower(split_part(email, '@', 2))"
    return "lower(substr(email, instr(email, '@') + 1))"


def _count(condition: str) -> str:
    return f"coalesce(sum(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"


HARD_BOUNCE = f"bounced_at IS NOT NULL AND bounce_type = '{BounceType.PERMANENT.value}'"


def status_keys(table: str, ids: list[int]) -> tuple[str, dict]:
    """Per campaign, :data:`STATUS_KEY` as ``table`` (campaign_counts or send_figures) holds it."""
    marks, params = id_list(ids)
    return (f"SELECT campaign_id, {', '.join(STATUS_KEY)} FROM {table} "
            f"WHERE campaign_id IN ({marks})"), params


def key_rows(rows) -> dict[int, tuple[int, ...]]:
    """:func:`status_keys`' rows as campaign id -> its key."""
    return {campaign_id: tuple(int(n) for n in key) for campaign_id, *key in rows}


def holding(ids: list[int], counters: dict[int, tuple[int, ...]],
            kept: dict[int, tuple[int, ...]]) -> set[int]:
    """Those of ``ids`` whose kept breakdowns hold: kept at the key their counters show now
    (a campaign without rows has no counter row yet: all zeros)."""
    nothing = (0,) * len(STATUS_KEY)
    return {cid for cid in ids if kept.get(cid) == counters.get(cid, nothing)}


def bounce_reasons(ids: list[int], limit: int) -> tuple[str, dict]:
    """The bounce events' reasons over the campaigns' deliveries, most frequent first."""
    marks, params = id_list(ids)
    return ("SELECT e.bounce_type, e.bounce_subtype, e.diagnostic, count(e.id) AS n "
            "FROM delivery_event e JOIN delivery d ON d.id = e.delivery_id "
            f"WHERE d.campaign_id IN ({marks}) AND e.kind = :bounce "
            f"AND {NOT_SIMULATOR.replace('email', 'd.email')} "
            "GROUP BY e.bounce_type, e.bounce_subtype, e.diagnostic "
            "ORDER BY n DESC, e.bounce_type, e.bounce_subtype LIMIT :limit"), {
        **params, "bounce": EventKind.BOUNCE.value, "simulator": SIMULATOR_PATTERN,
        "limit": limit}


def held_domains(dialect: str, ids: list[int], limit: int | None) -> tuple[str, dict]:
    """Per recipient domain of the campaigns whose breakdowns are kept: the kept rows and sent
    (every row counted as delivered), less what the events marked (the undelivered), plus
    their bounces and complaints, from the marked rows alone; most recipients first."""
    marks, params = id_list(ids)
    kept = (f"SELECT domain, recipients, sent, recipients AS delivered, 0 AS bounced, "
            f"0 AS bounced_hard, 0 AS complained FROM send_domains WHERE campaign_id IN ({marks})")
    events = (f"SELECT {_domain_of(dialect)} AS domain, 0 AS recipients, 0 AS sent, "
              f"-{_count('delivered_at IS NULL')} AS delivered, "
              f"{_count('bounced_at IS NOT NULL')} AS bounced, "
              f"{_count(HARD_BOUNCE)} AS bounced_hard, "
              f"{_count('complained_at IS NOT NULL')} AS complained FROM delivery "
              f"WHERE campaign_id IN ({marks}) AND ({MARKED}) AND {NOT_SIMULATOR} "
              f"GROUP BY {_domain_of(dialect)}")
    sums = ", ".join(f"sum({name}) AS {name}" for name in DOMAIN_COUNTS)
    query = (f"SELECT domain, {sums} FROM ({kept} UNION ALL {events}) AS every "
             "GROUP BY domain ORDER BY recipients DESC, domain")
    if limit is not None:
        query += " LIMIT :limit"
        params = {**params, "limit": limit}
    return query, {**params, "simulator": SIMULATOR_PATTERN}


def add_up_domains(rows, limit: int | None) -> list[tuple[str, dict[str, int]]]:
    """Per-domain rows (domain, then :data:`DOMAIN_COUNTS`) added up, most recipients first,
    then by name, the first ``limit``."""
    merged: dict[str, list[int]] = {}
    for name, *counts in rows:
        total = merged.setdefault(name, [0] * len(DOMAIN_COUNTS))
        for index, n in enumerate(counts):
            total[index] += int(n)
    ordered = sorted(merged.items(), key=lambda item: (-item[1][0], item[0]))
    return [(name, dict(zip(DOMAIN_COUNTS, counts, strict=True)))
            for name, counts in ordered[:limit]]


def add_up_minutes(rows) -> list[tuple[str, int]]:
    """(minute, sent) rows added up per minute, in order."""
    minutes: dict[str, int] = {}
    for minute, n in rows:
        minutes[str(minute)] = minutes.get(str(minute), 0) + int(n)
    return sorted(minutes.items())


def kept_minutes(ids: list[int]) -> tuple[str, dict]:
    """Rows sent per minute (UTC, ``YYYY-MM-DDTHH:MM``) of the campaigns whose minutes are
    kept, in order."""
    marks, params = id_list(ids)
    return (f"SELECT minute, sum(sent) AS sent FROM send_minutes WHERE campaign_id IN ({marks}) "
            "GROUP BY minute ORDER BY minute"), params


__all__ = ["DOMAIN_COUNTS", "HARD_BOUNCE", "MARKED", "NOT_SIMULATOR", "SIMULATOR_PATTERN",
           "STATUS_KEY", "add_up_domains", "add_up_minutes", "bounce_reasons", "held_domains",
           "holding", "id_list", "kept_minutes", "key_rows", "status_keys"]
