"""The SQL of an issue's link counts as text, and the figures made of its rows: read by
``store.link_counts`` through SQLAlchemy and by ``mailer stats --issue`` on a current SQLite
file through sqlite3 alone (``reads.quick_counts``). Nothing here imports SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

LINK_FIGURES = (
    "SELECT l.n, l.url, l.text, l.section, "
    "COALESCE(SUM(CASE WHEN c.machine THEN 0 ELSE c.clicks END), 0) AS clicks, "
    "COALESCE(SUM(CASE WHEN c.machine THEN c.clicks ELSE 0 END), 0) AS machine "
    "FROM issue_link l LEFT JOIN link_clicks c ON c.issue_number = l.issue_number AND c.n = l.n "
    "WHERE l.issue_number = :issue GROUP BY l.n, l.url, l.text, l.section")


def link_figures_of(rows: Iterable[Sequence]) -> list[dict]:
    """Each link of :data:`LINK_FIGURES`' rows with its clicks (people) and machine hits, most
    clicked first (ties in the issue's order)."""
    figures = [{"n": int(n), "url": url, "text": words, "section": section,
                "clicks": int(clicks), "machine": int(machine)}
               for n, url, words, section, clicks, machine in rows]
    figures.sort(key=lambda f: (-f["clicks"], -f["machine"], f["n"]))
    return figures


__all__ = ["LINK_FIGURES", "link_figures_of"]
