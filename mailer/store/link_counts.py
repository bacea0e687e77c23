"""Link counts (issue 25 §1): an issue's link table and its hourly counters.

``record_links`` writes what each ``/l/<issue>/<n>`` stands for when a campaign starts;
``count_click`` adds one to the (issue, link, hour, machine) counter with a single UPSERT, so a
click never makes a row of its own and nothing about the reader is stored; ``link_figures`` is
what ``mailer stats --json`` shows. The SQL is the same text on SQLite (3.24+) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

from mailer.render.links import IssueLink as RenderedLink
from mailer.store.link_sql import LINK_FIGURES, link_figures_of
from mailer.store.models import LinkClicks, table_of

UPSERT_LINK = text(
    "INSERT INTO issue_link (issue_number, n, url, text, section) "
    "VALUES (:issue, :n, :url, :text, :section) "
    "ON CONFLICT (issue_number, n) DO UPDATE SET url = excluded.url, text = excluded.text, "
    "section = excluded.section")
DROP_LATER = text("DELETE FROM issue_link WHERE issue_number = :issue AND n > :last")
TARGET = text("SELECT url FROM issue_link WHERE issue_number = :issue AND n = :n")
COUNT = text(
    "INSERT INTO link_clicks (issue_number, n, hour, machine, clicks) "
    "VALUES (:issue, :n, :hour, :machine, 1) "
    "ON CONFLICT (issue_number, n, hour, machine) DO UPDATE SET clicks = link_clicks.clicks + 1"
).bindparams(bindparam("hour", type_=table_of(LinkClicks).c.hour.type),
             bindparam("machine", type_=table_of(LinkClicks).c.machine.type))
FIGURES = text(LINK_FIGURES)


def hour_of(now: datetime) -> datetime:
    """The UTC hour a click is counted in."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def record_links(engine: Engine, issue_number: int, links: Iterable[RenderedLink]) -> int:
    """Write (or rewrite) the link table of an issue; a re-render replaces the rows with the same
    ``n`` and drops numbers it no longer has. Their counters stay. Returns how many links."""
    links = list(links)
    rows = [{"issue": issue_number, "n": link.n, "url": link.url, "text": link.text,
             "section": link.section} for link in links]
    with engine.begin() as connection:
        if rows:
            connection.execute(UPSERT_LINK, rows)  # one executemany for the issue's few hundred
        connection.execute(DROP_LATER, {"issue": issue_number,
                                        "last": max((link.n for link in links), default=0)})
    return len(rows)


def link_target(engine: Engine, issue: int, n: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(TARGET, {"issue": issue, "n": n}).scalar()


def count_click(engine: Engine, issue: int, n: int, machine: bool, now: datetime) -> None:
    """Add one to the link's counter for ``now``'s hour: one UPSERT, no row per request."""
    with engine.begin() as connection:
        connection.execute(COUNT, {"issue": issue, "n": n, "machine": bool(machine),
                                   "hour": hour_of(now)})

SECTIONS = text(
    "SELECT l.section, COUNT(DISTINCT l.issue_number) AS issues, COUNT(*) AS links, "
    "COALESCE(SUM(s.clicks), 0) AS clicks "
    "FROM issue_link l LEFT JOIN (SELECT issue_number, n, SUM(clicks) AS clicks FROM link_clicks "
    "WHERE NOT machine GROUP BY issue_number, n) s "
    "ON s.issue_number = l.issue_number AND s.n = l.n "
    "GROUP BY l.section")


def section_figures(engine: Engine) -> list[dict]:
    """Which of the issues' ``##`` sections draw readers, across every issue with counted links:
    people's clicks per section (machine hits left out), the issues and links it had, and clicks
    per link, so a section with many links does not win by size alone. Most clicked first."""
    with engine.connect() as connection:
        rows = connection.execute(SECTIONS).all()
    figures = [{"section": section or "(before the first section)", "issues": int(issues),
                "links": int(links), "clicks": int(clicks),
                "per_link": round(int(clicks) / int(links), 2) if links else 0.0}
               for section, issues, links, clicks in rows]
    figures.sort(key=lambda f: (-int(f["clicks"]), str(f["section"])))
    return figures


def link_figures(engine: Engine, issue: int) -> list[dict]:
    """Each recorded link of ``issue`` with its clicks (people) and machine hits, most clicked
    first (ties in the issue's order)."""
    with engine.connect() as connection:
        rows = connection.execute(FIGURES, {"issue": issue}).all()
    return link_figures_of(rows)


__all__ = ["count_click", "hour_of", "link_figures", "link_target", "record_links",
           "section_figures"]
