"""The console's long lists as a new operator meets them (issue 20, item 20): Readers shows the
latest sign-ups before any search, filters by status with a count per status, puts an exact
address first and pages on; Events sorts and pages by the time it shows."""

from __future__ import annotations

import html as markup
import json
import re
from datetime import timedelta

import pytest

from tests.console_seed import SOFT, START_643, build_console_data
from tests.web_clients import ADMIN_ENV, PASSWORD, USER, admin_client, basic_auth

AUTH = basic_auth(USER, PASSWORD)
BULK = "paging.example"


@pytest.fixture
def console(mailer_env, engine, monkeypatch):
    build_console_data(engine)
    return admin_client(monkeypatch, ADMIN_ENV)


def _db(engine):
    from mailer.store.db import session

    return session(engine)


def _readers_in_table(page: str) -> list[str]:
    table = re.search(r'<table id="found">.*?</table>', page, re.S)
    return re.findall(r'<a href="/admin/readers/\d+">([^<]+)</a>', table.group(0)) if table else []


def _older_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>Older', page)
    return markup.unescape(found.group(1)) if found else None


def _walk(console, first: str, rows) -> list:
    """Every page from ``first`` on through its "Older" links: the rows of each, in order."""
    seen, path, pages = [], first, 0
    while path:
        response = console.get(path, headers=AUTH)
        assert response.status_code == 200, path
        seen.extend(rows(response.text))
        path, pages = _older_link(response.text), pages + 1
        assert pages < 20, "the Older links go round in circles"
    return seen


def _add_readers(engine, count: int) -> None:
    from mailer.domain import SubscriberStatus
    from mailer.store.models import Subscriber

    with _db(engine) as db:
        for n in range(count):
            status = SubscriberStatus.ACTIVE if n % 3 else SubscriberStatus.UNSUBSCRIBED
            db.add(Subscriber(email=f"bulk{n}@{BULK}", status=status,
                              created_at=START_643 + timedelta(minutes=n)))
        db.commit()


def _emails_newest_first(engine, *conditions) -> list[str]:
    from sqlmodel import select

    from mailer.store.models import Subscriber

    with _db(engine) as db:
        return list(db.exec(select(Subscriber.email).where(*conditions)
                            .order_by(Subscriber.id.desc())))


def test_readers_lists_the_latest_sign_ups_before_any_search(console, engine):
    from mailer.store.db import session
    from mailer.reads.subscriber_figures import subscribers_by_status

    _add_readers(engine, 70)
    page = console.get("/admin/readers", headers=AUTH).text
    assert _readers_in_table(page) == _emails_newest_first(engine)[:50]
    with session(engine) as db:
        counts = subscribers_by_status(db)
    options = dict(re.findall(r'<option value="(\w*)"[^>]*>([^<]+)</option>', page))
    assert options[""] == f"all statuses ({sum(counts.values()):,})"
    for status, n in counts.items():
        assert options[status] == f"{status} ({n:,})"


def test_readers_filter_by_status_and_search_within_it(console, engine):
    from mailer.store.models import Subscriber

    bounced = console.get("/admin/readers", params={"status": "bounced"}, headers=AUTH).text
    assert _readers_in_table(bounced) == _emails_newest_first(engine,
                                                              Subscriber.status == "bounced")
    assert SOFT in _readers_in_table(bounced)
    both = console.get("/admin/readers", params={"status": "active", "q": "soft"},
                       headers=AUTH).text
    assert "No active reader" in both and SOFT not in _readers_in_table(both)
    # a status that does not exist lists everyone rather than failing
    assert console.get("/admin/readers", params={"status": "<x>"}, headers=AUTH).status_code == 200


def test_paging_through_readers_visits_each_once_newest_first(console, engine):
    from mailer.store.models import Subscriber

    _add_readers(engine, 130)
    seen = _walk(console, f"/admin/readers?q={BULK}", _readers_in_table)
    assert seen == _emails_newest_first(engine, Subscriber.email.like(f"%{BULK}"))
    unsubscribed = _walk(console, f"/admin/readers?q={BULK}&status=unsubscribed",
                         _readers_in_table)
    assert len(unsubscribed) == 44 and set(unsubscribed) <= set(seen)


def test_a_full_address_puts_that_reader_first_on_the_first_page_only(console, engine):
    from mailer.domain import SubscriberStatus
    from mailer.store.models import Subscriber

    exact = f"ann@{BULK}"
    with _db(engine) as db:  # the reader first, then 60 newer ones whose address contains hers
        for email in [exact, *(f"{n}{exact}" for n in range(60))]:
            db.add(Subscriber(email=email, status=SubscriberStatus.ACTIVE))
            db.flush()
        db.commit()
    pages = []
    path = f"/admin/readers?q={exact.upper()}"
    while path:
        page = console.get(path, headers=AUTH).text
        pages.append(_readers_in_table(page))
        path = _older_link(page)
    assert pages[0][0] == exact and len(pages) == 2
    everyone = [email for rows in pages for email in rows]
    assert everyone.count(exact) == 1 and len(everyone) == 61
    assert everyone[1:] == [f"{n}{exact}" for n in reversed(range(60))]  # then newest first


def test_a_cursor_the_page_did_not_make_is_one_line_not_a_crash(console):
    for path in ("/admin/readers?before=yesterday", "/admin/events?before=soon",
                 "/admin/events?before=2026-13-40T99:00:00_x"):
        response = console.get(path, headers=AUTH)
        assert response.status_code == 400, path
        assert "Traceback" not in response.text and "start from the" in response.text


def _add_late_events(engine, count: int) -> None:
    """Events that arrive out of order: each received a minute after the one before, but the
    later they arrive the earlier they happened (SES sends some late)."""
    from mailer.store.models import DeliveryEventRecord

    with _db(engine) as db:
        for n in range(count):
            db.add(DeliveryEventRecord(
                event_key=f"late-{n}", kind="delivery" if n % 4 else "bounce",
                recipient=f"bulk{n}@{BULK}", occurred_at=START_643 - timedelta(minutes=n),
                received_at=START_643 + timedelta(days=30, minutes=n),
                raw=json.dumps({"eventType": "Delivery"})))
        db.commit()


def _events_received_last_first(engine, kind: str | None = None) -> list[int]:
    from sqlmodel import select

    from mailer.store.models import DeliveryEventRecord as E

    query = select(E.id).order_by(E.id.desc())
    if kind:
        query = query.where(E.kind == kind)
    with _db(engine) as db:
        return list(db.exec(query))


def _event_rows(page: str) -> list[tuple[int, str]]:
    """(id, received time shown) of each row; a page with no row is a dead "Older" link."""
    rows = re.findall(r'<tr data-event="(\d+)"><td class="left">([^<]+)</td>', page)
    assert rows, "an Older link led to an empty page"
    return [(int(n), received) for n, received in rows]


def test_paging_through_events_visits_each_once_in_the_order_shown(console, engine):
    _add_late_events(engine, 143)  # with the seed's 7: exactly three pages of 50
    first = console.get("/admin/events", headers=AUTH).text
    headers = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', first)
    assert headers[0] == "Received (UTC)" and "Occurred (UTC)" in headers
    seen = _walk(console, "/admin/events", _event_rows)
    assert [n for n, _ in seen] == _events_received_last_first(engine)
    shown = [received for _, received in seen]
    assert shown == sorted(shown, reverse=True)  # sorted by the time in the first column
    bounces = _walk(console, "/admin/events?kind=bounce", _event_rows)
    assert [n for n, _ in bounces] == _events_received_last_first(engine, "bounce")
