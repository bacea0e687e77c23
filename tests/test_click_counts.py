"""Link counts, aggregate only (issue 25 §1): the HTML part as the counter rewrites it.

Rendered from the shipped issue 644: what a reader's mail links to with MAILER_CLICK_COUNTS off
and on, and that nothing in a counted link tells one reader from another.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from bs4 import BeautifulSoup

from mailer.config import DEFAULT_ISSUES_DIR, load_settings
from mailer.figures import GMAIL_CLIP_BYTES
from mailer.issues import load_issue
from mailer.render import RenderOptions, personalise, render_issue
from mailer.render.links import count_links
from tests.web_clients import site_client

ISSUE_644 = DEFAULT_ISSUES_DIR / "2026-03-25-this-week-in-rust.md"
BASE = "https://twir.example.org"
COUNTER = re.compile(r"^https://twir\.example\.org/l/644/(\d+)$")


@pytest.fixture(scope="module")
def options_off() -> RenderOptions:
    return dataclasses.replace(RenderOptions.from_settings(load_settings()), base_url=BASE)


@pytest.fixture(scope="module")
def off(options_off):
    return render_issue(load_issue(ISSUE_644), options_off)


@pytest.fixture(scope="module")
def on(options_off):
    return render_issue(load_issue(ISSUE_644), dataclasses.replace(options_off, click_counts=True))


def hrefs(html: str) -> list[str]:
    return [a["href"] for a in BeautifulSoup(html, "html.parser").find_all("a", href=True)]


def reader_copy(rendered, reader: str) -> str:
    html, _ = personalise(rendered, unsubscribe_url=f"{BASE}/u/{reader}",
                          manage_url=f"{BASE}/m/{reader}")
    return html


def test_off_is_the_default_and_leaves_links_as_written(off):
    assert load_settings().click_counts is False
    assert off.links == ()
    assert not any(COUNTER.match(h) for h in hrefs(off.html))


def test_on_points_every_outside_link_at_the_counter_in_order(off, on):
    outside = [h for h in hrefs(off.html) if h.startswith("http") and not h.startswith(BASE)]
    assert len(outside) > 50  # 644 is a real issue, not a toy
    counted = [int(m.group(1)) for h in hrefs(on.html) if (m := COUNTER.match(h))]
    assert counted == list(range(1, len(outside) + 1))
    assert [link.url for link in on.links] == outside


def test_the_counter_records_words_and_section_of_each_link(on):
    sections = {link.section for link in on.links}
    assert {"Crate of the Week", "Jobs", "Upcoming Events"} <= sections
    assert all(link.text for link in on.links[:20])


def test_unsubscribe_and_manage_are_never_rewritten(on):
    html = reader_copy(on, "reader-a")
    assert f"{BASE}/u/reader-a" in hrefs(html)
    assert f"{BASE}/m/reader-a" in hrefs(html)


def test_two_readers_copies_differ_only_in_their_own_links(on):
    a, b = reader_copy(on, "reader-a"), reader_copy(on, "reader-b")
    assert a != b
    assert a.replace("reader-a", "X") == b.replace("reader-b", "X")


def test_plaintext_keeps_the_original_urls(off, on):
    assert on.text == off.text


def test_still_under_gmails_clip_with_every_link_rewritten(on):
    assert on.html_bytes < GMAIL_CLIP_BYTES
    assert not any("clip" in w.lower() for w in on.warnings)


def test_own_host_mailto_and_fragment_links_stay():
    html = ('<h2>News</h2><a href="https://x.example/a">A</a><a href="mailto:e@x.example">m</a>'
            f'<a href="#top">t</a><a href="{BASE}/confirm/abc">c</a>')
    out, links = count_links(html, base_url=BASE, issue_number=7)
    assert [(ln.n, ln.url, ln.text, ln.section) for ln in links] == [(1, "https://x.example/a", "A", "News")]
    assert f'href="{BASE}/l/7/1"' in out
    assert 'href="mailto:e@x.example"' in out and 'href="#top"' in out and f"{BASE}/confirm/abc" in out


# -- the redirect, end to end: send 644 with counts on, follow its links ------------------------

READER = "ann@example.org"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _client(env: dict):
    return site_client(env["MAILER_BASE_URL"], BROWSER)


def _sent_with_counts(env: dict, monkeypatch) -> dict:
    from tests.mailer_cli import mailer, outbox

    env = {**env, "MAILER_CLICK_COUNTS": "1"}
    monkeypatch.setenv("MAILER_CLICK_COUNTS", "1")  # for the web app in process
    assert mailer(env, "subscribers", "add", READER, "--confirmed").returncode == 0
    result = mailer(env, "send", "--issue", "644", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    [message] = [m for m in outbox(env) if m["To"] == READER]
    counted = re.compile(re.escape(env["MAILER_BASE_URL"]) + r"/l/644/(\d+)$")
    env["links"] = [h for h in hrefs(message.get_body(("html",)).get_content()) if counted.match(h)]
    return env


@pytest.fixture
def sent(mailer_env, monkeypatch) -> dict:
    return _sent_with_counts(mailer_env, monkeypatch)


def _clicks(engine) -> list[tuple]:
    from sqlalchemy import text

    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT issue_number, n, machine, clicks FROM link_clicks ORDER BY n, machine"))]


def _path(env: dict, url: str) -> str:
    return url.removeprefix(env["MAILER_BASE_URL"])


def _json_stats(env: dict) -> dict:
    import json

    from tests.mailer_cli import mailer

    result = mailer({k: v for k, v in env.items() if k != "links"}, "stats", "--issue", "644",
                    "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_counted_link_redirects_to_its_url_without_a_referrer(sent, engine, off):
    assert len(sent["links"]) > 50  # every outside link of 644 points at the counter
    first = sent["links"][0]
    with _client(sent) as client:
        answer = client.get(_path(sent, first))
    outside = [h for h in hrefs(off.html) if h.startswith("http") and not h.startswith(BASE)]
    assert answer.status_code == 302
    assert answer.headers["location"] == outside[0]
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert _clicks(engine) == [(644, 1, False, 1)]


@pytest.mark.slow
def test_ids_never_issued_are_a_plain_404_and_count_nothing(sent, engine):
    with _client(sent) as client:
        for path in ("/l/644/99999", "/l/1/1", "/l/644/0", "/l/644/x", "/l/644/1" + "0" * 30):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.text == "Not Found" and "644" not in answer.text
    assert _clicks(engine) == []


@pytest.mark.slow
def test_head_prefetch_and_scanners_count_as_machine_not_clicks(sent, engine):
    path = _path(sent, sent["links"][1])
    with _client(sent) as client:
        assert client.head(path).status_code == 302
        assert client.get(path, headers={"sec-purpose": "prefetch;prerender"}).status_code == 302
        assert client.get(path, headers={"purpose": "prefetch"}).status_code == 302
        assert client.get(path, headers={"user-agent": "python-requests/2.32"}).status_code == 302
        assert client.get(path, headers={"user-agent": ""}).status_code == 302
    assert _clicks(engine) == [(644, 2, True, 5)]


@pytest.mark.slow
def test_clicks_in_one_hour_are_one_counter_row_and_stats_sort_them(sent, engine):
    with _client(sent) as client:
        for _ in range(5):
            assert client.get(_path(sent, sent["links"][2])).status_code == 302
        for _ in range(2):
            assert client.get(_path(sent, sent["links"][0])).status_code == 302
        client.head(_path(sent, sent["links"][0]))
    assert _clicks(engine) == [(644, 1, False, 2), (644, 1, True, 1), (644, 3, False, 5)]
    links = _json_stats(sent)["links"]
    assert len(links) == len(sent["links"])
    assert [(f["n"], f["clicks"], f["machine"]) for f in links[:3]] == [(3, 5, 0), (1, 2, 1),
                                                                        (2, 0, 0)]
    assert set(links[0]) == {"n", "url", "text", "section", "clicks", "machine"}
    assert links[0]["url"].startswith("http") and links[0]["text"]


@pytest.mark.slow
def test_sending_again_records_the_same_table(sent, engine):
    from mailer.render.links import IssueLink
    from mailer.store.link_counts import link_target, record_links

    before = link_target(engine, 644, 1)
    count = len(sent["links"])
    assert record_links(engine, 644, [IssueLink(1, "https://x.example/new", "new", "S")]) == 1
    assert link_target(engine, 644, 1) == "https://x.example/new"
    assert link_target(engine, 644, count) is None  # numbers a re-render no longer has are gone
    assert before != "https://x.example/new"


def test_machine_rules():
    from mailer.render.links import is_machine

    assert not is_machine("GET", BROWSER)
    assert is_machine("HEAD", BROWSER)
    assert is_machine("GET", BROWSER, purpose="prefetch")
    assert is_machine("GET", BROWSER, sec_purpose="prefetch;prerender")
    assert is_machine("GET", "")
    assert is_machine("GET", None)
    for agent in ("Googlebot/2.1", "Mozilla/5.0 (compatible; Barracuda Sentinel)", "curl/8.5",
                  "Go-http-client/1.1", "python-requests/2.32", "Mimecast-LinkScanner",
                  "Proofpoint URL Defense", "Slackbot-LinkExpanding 1.0", "SkypeUriPreview"):
        assert is_machine("GET", agent), agent


@pytest.mark.postgres
@pytest.mark.slow
def test_counts_on_postgresql(mailer_env, pg_url, monkeypatch):
    from mailer.store.db import get_engine, reset_engines

    monkeypatch.setenv("MAILER_DATABASE_URL", pg_url)
    reset_engines()
    env = _sent_with_counts({**mailer_env, "MAILER_DATABASE_URL": pg_url}, monkeypatch)
    engine = get_engine(pg_url)
    with _client(env) as client:
        for _ in range(5):
            assert client.get(_path(env, env["links"][0])).status_code == 302
        assert client.head(_path(env, env["links"][0])).status_code == 302
        assert client.get("/l/644/99999").status_code == 404
    assert _clicks(engine) == [(644, 1, False, 5), (644, 1, True, 1)]
    assert [(f["n"], f["clicks"]) for f in _json_stats(env)["links"][:2]] == [(1, 5), (2, 0)]


def test_one_row_per_hour_utc_whatever_the_clock_zone(engine):
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import text

    from mailer.render.links import IssueLink
    from mailer.store.link_counts import count_click, link_figures, record_links

    record_links(engine, 7, [IssueLink(1, "https://x.example/a", "A", "News")])
    paris = timezone(timedelta(hours=1))
    for at in (datetime(2026, 12, 3, 8, 0, tzinfo=UTC), datetime(2026, 12, 3, 8, 59, 59, tzinfo=UTC),
               datetime(2026, 12, 3, 9, 30, tzinfo=paris), datetime(2026, 12, 3, 9, 0, tzinfo=UTC)):
        count_click(engine, 7, 1, False, at)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT hour, clicks FROM link_clicks ORDER BY hour")).all()
    assert [clicks for _, clicks in rows] == [3, 1]
    assert link_figures(engine, 7)[0]["clicks"] == 4


@pytest.mark.slow
def test_the_counter_is_rate_limited_per_network_and_gets_the_public_headers(sent, monkeypatch):
    from mailer.web import clicks

    monkeypatch.setattr(clicks, "CLICKS_PER_MINUTE", 3)
    path = _path(sent, sent["links"][0])
    with _client(sent) as client:
        answers = [client.get(path) for _ in range(4)]
    assert [a.status_code for a in answers] == [302, 302, 302, 429]
    assert answers[3].headers["retry-after"]
    assert answers[0].headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
def test_the_admin_issue_page_lists_the_links_by_clicks(sent, monkeypatch):
    from tests.web_clients import ADMIN_ENV, PASSWORD, USER, basic_auth

    for key, value in ADMIN_ENV.items():
        monkeypatch.setenv(key, value)
    with _client(sent) as client:
        for _ in range(3):
            client.get(_path(sent, sent["links"][4]))
        page = client.get("/admin/issues/644", headers=basic_auth(USER, PASSWORD))
    assert page.status_code == 200
    table = BeautifulSoup(page.text, "html.parser").find("table", id="links")
    first = table.find("tbody").find("tr")
    cells = [td.get_text() for td in first.find_all("td")]
    assert cells[0] == "5" and cells[2:] == ["3", "0"]  # number, section, clicks, machine
    assert len(table.find("tbody").find_all("tr")) == len(sent["links"])


def test_sections_that_draw_readers_across_issues(engine):
    from datetime import UTC, datetime

    from mailer.render.links import IssueLink
    from mailer.store.link_counts import count_click, record_links, section_figures

    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    record_links(engine, 7, [IssueLink(1, "https://x.example/a", "A", "Crate of the Week"),
                             IssueLink(2, "https://x.example/b", "B", "Jobs"),
                             IssueLink(3, "https://x.example/c", "C", "Jobs")])
    record_links(engine, 8, [IssueLink(1, "https://x.example/d", "D", "Crate of the Week")])
    for issue, n, machine, times in ((7, 1, False, 2), (8, 1, False, 3), (7, 2, False, 1),
                                     (7, 3, True, 9)):  # the scanner's 9 hits are not readers
        for _ in range(times):
            count_click(engine, issue, n, machine, at)
    assert [(s["section"], s["issues"], s["links"], s["clicks"], s["per_link"])
            for s in section_figures(engine)] == [("Crate of the Week", 2, 2, 5, 2.5),
                                                  ("Jobs", 1, 2, 1, 0.5)]


@pytest.mark.slow
def test_the_overview_shows_which_sections_draw_readers(sent, monkeypatch):
    from tests.web_clients import ADMIN_ENV, PASSWORD, USER, basic_auth

    for key, value in ADMIN_ENV.items():
        monkeypatch.setenv(key, value)
    with _client(sent) as client:
        for _ in range(3):
            client.get(_path(sent, sent["links"][4]))
        page = client.get("/admin", headers=basic_auth(USER, PASSWORD))
    assert page.status_code == 200
    table = BeautifulSoup(page.text, "html.parser").find("table", id="sections")
    first = table.find("tbody").find("tr")
    clicked = next(f for f in _json_stats(sent)["links"] if f["clicks"])
    assert clicked["n"] == 5
    # the clicked link's section first (644's fifth link comes before its first heading)
    assert first.find("th").get_text() == (clicked["section"] or "(before the first section)")
    assert [td.get_text() for td in first.find_all("td")][2] == "3"  # with its clicks
