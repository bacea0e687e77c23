"""The operator console, page by page, through the app: what an operator reads and what their
actions change. The same pages in Chromium are in test_console_browser.py."""

from __future__ import annotations

import json
import re

import pytest

from tests.console_seed import ANGRY, HARD, SOFT, STOP_REASON, add_running_campaign, build_console_data
from tests.web_clients import ADMIN_ENV, PASSWORD, USER, admin_client, basic_auth
from tests.mailer_cli import mailer

AUTH = basic_auth(USER, PASSWORD)


@pytest.fixture
def console(mailer_env, engine, monkeypatch):
    build_console_data(engine)
    return admin_client(monkeypatch, ADMIN_ENV)


def _reader_id(engine, email: str) -> int | None:
    from mailer.store.db import session
    from mailer.store.subscribers import get_by_email

    with session(engine) as db:
        reader = get_by_email(db, email)
        return reader.id if reader else None


def _status_and_history(engine, email: str) -> tuple[str, list]:
    from mailer.store.db import session
    from mailer.reads.subscriber_figures import history

    with session(engine) as db:
        reader, changes = history(db, email)
        return str(reader.status), [(c.source, str(c.to_status), json.loads(c.detail or "{}"))
                                    for c in changes]


def _token(console, path: str) -> str:
    html = console.get(path, headers=AUTH).text
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def _post(console, path: str, reason: str, token: str | None = None, **headers):
    token = _token(console, path) if token is None else token
    return console.post(path, data={"reason": reason, "csrf_token": token},
                        headers={**AUTH, **headers}, follow_redirects=False)


def test_every_console_page_asks_for_credentials(console, engine):
    reader = _reader_id(engine, SOFT)
    for path in ("/admin", "/admin/readers?q=soft", f"/admin/readers/{reader}",
                 f"/admin/readers/{reader}/unsuppress", "/admin/events", "/admin/events/1",
                 "/admin/issues/644/progress.json"):
        response = console.get(path)
        assert response.status_code == 401, path
        assert SOFT not in response.text
    refused = console.post(f"/admin/readers/{reader}/unsuppress", data={"reason": "because"})
    assert refused.status_code == 401
    assert _status_and_history(engine, SOFT)[0] == "bounced"


def test_overview_puts_the_stopped_campaign_first_and_draws_the_limits(console):
    html = console.get("/admin", headers=AUTH).text
    attention = html.index('data-attention=')
    assert attention < html.index("At a glance")
    assert STOP_REASON in html and "1 row is unknown" in html and "2 still queued" in html
    # the rate charts carry SES's and Gmail's lines, in words a screen reader reads too
    assert "SES review 5 %" in html and "SES pause 10 %" in html and "Gmail 0.3 %" in html
    # issue 640: 3 hard bounces among its 11 sent; the soft-bouncing reader's bounce is not
    # counted (SES's bounce rate, the one the breaker pauses on): 3 of 11
    assert re.search(r"<desc[^>]*>Bounce rate \(hard bounces ÷ sent\) of issues 634 to 645; "
                     r"the highest is 27\.27 %", html)
    # svg text at the page's font size: no viewBox anywhere
    assert "viewBox" not in html and html.count('role="img"') == 5


def test_stats_json_and_the_cli_give_one_document(console, mailer_env):
    web = console.get("/admin/stats.json", headers=AUTH).json()
    cli = mailer(mailer_env, "stats", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == web
    assert set(web) == {"campaigns", "subscribers", "issues", "weeks", "signups"}
    assert [t["issue_number"] for t in web["issues"]] == list(range(634, 646))
    assert web["signups"]["signups"] == 12 and web["signups"]["confirmed"] == 8
    assert web["weeks"][-1]["list_size"] == web["subscribers"]["active"]


def test_list_size_is_counted_back_from_today(mailer_env, engine):
    from datetime import UTC, date, datetime

    from mailer.reads.list_health import list_weeks
    from mailer.store.db import session

    build_console_data(engine, now=datetime(2026, 11, 27, 12, tzinfo=UTC))
    with session(engine) as db:
        weeks = list_weeks(db, weeks=4, today=date(2026, 11, 27))
    assert [w.week_start.isoformat() for w in weeks] == ["2026-11-02", "2026-11-09",
                                                         "2026-11-16", "2026-11-23"]
    for before, after in zip(weeks, weeks[1:], strict=False):
        gained = after.list_size - before.list_size
        # only confirmations add to the list here; every exit from active takes one away
        assert gained <= after.confirmed
    # sign-ups 1, 2.5 and 4 days before that Friday; every third one never confirmed
    assert weeks[-1].signups == 3 and weeks[-1].signups_confirmed == 2


@pytest.mark.parametrize("path", [
    "/admin/issues/9223372036854775808", "/admin/issues/9223372036854775807",
    "/admin/issues/0", "/admin/issues/-1", "/admin/issues/9223372036854775808/progress.json",
    "/admin/readers/9223372036854775808", "/admin/readers/99999999999999999999999/forget",
    "/admin/events/9223372036854775808", "/admin/events?before=9223372036854775808",
])
def test_numbers_no_row_can_have_are_a_4xx_not_a_500(console, path):
    response = console.get(path, headers=AUTH)
    assert response.status_code < 500, path
    if "before=" not in path:
        assert 400 <= response.status_code < 500


def test_issue_page_shows_the_funnel_providers_first_and_attributed_unsubscribes(console):
    html = console.get("/admin/issues/644", headers=AUTH).text
    figures = dict(re.findall(r'data-figure="(\w+)">([^<]*)<', html))
    assert (figures["recipients"], figures["sent"], figures["delivered"]) == ("40", "36", "30")
    assert (figures["bounced"], figures["complained"]) == ("3", "1")
    domains = re.search(r'<table id="domains">.*?</table>', html, re.S).group(0)
    assert domains.index("<strong>Gmail</strong>") < domains.index("example.com")
    # readers 1 and 2 unsubscribed after 644 went out; reader 3 did before it
    assert figures["unsubscribed_attributed"] == "2" and "2 by one-click" in html
    assert "r1@gmail.com" in html and "r3@gmail.com" not in html.split("Unsubscribes after")[1]


def test_a_running_send_is_followed_live(console, engine):
    add_running_campaign(engine, recipients=5)
    html = console.get("/admin/issues/646", headers=AUTH)
    assert 'data-progress-url="/admin/issues/646/progress.json"' in html.text
    script = re.search(r"<script>(.*?)</script>", html.text, re.S).group(1)
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html.headers["content-security-policy"]
    progress = console.get("/admin/issues/646/progress.json", headers=AUTH).json()
    assert progress == {**progress, "running": True, "recipients": 5, "queued": 5, "done": 0}


def test_reader_search_finds_part_of_an_address_in_any_case(console):
    html = console.get("/admin/readers", params={"q": "SOFT@Example"}, headers=AUTH).text
    assert SOFT in html and "1 reader whose" in html
    assert "gmail" in console.get("/admin/readers", params={"q": "r1"}, headers=AUTH).text
    # a wildcard typed by the operator is a character, not "anything"
    nothing = console.get("/admin/readers", params={"q": "%"}, headers=AUTH).text
    assert "No reader" in nothing


def test_reader_page_has_consent_history_and_deliveries(console, engine):
    html = console.get(f"/admin/readers/{_reader_id(engine, SOFT)}", headers=AUTH).text
    assert "192.0.2.7" in html and "192.0.2.8" in html  # sign-up and confirmation IPs
    history = re.search(r'<table id="history">.*?</table>', html, re.S).group(0)
    assert "active → bounced" in history and history.count('data-kind="bounce"') == 3
    assert html.count("<tr><th scope=\"row\"><a href=\"/admin/issues/") == 3
    assert "Unsuppress…" in html and "Unsubscribe…" not in html


def test_unsuppressing_a_soft_bounced_reader_records_the_reason(console, engine):
    reader = _reader_id(engine, SOFT)
    response = _post(console, f"/admin/readers/{reader}/unsuppress", "Mailbox cleared, asked by mail")
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/readers/{reader}?done=unsuppress"
    status, changes = _status_and_history(engine, SOFT)
    assert status == "active"
    assert changes[-1] == ("admin", "active", {"action": "unsuppress", "operator": USER,
                                               "reason": "Mailbox cleared, asked by mail"})
    page = console.get(response.headers["location"], headers=AUTH).text
    assert "Mailbox cleared, asked by mail" in page


def test_a_hard_bounce_and_a_complaint_are_not_lifted_here(console, engine):
    for email, action in ((HARD, "unsuppress"), (ANGRY, "unsuppress"), (ANGRY, "unsubscribe")):
        reader = _reader_id(engine, email)
        page = console.get(f"/admin/readers/{reader}", headers=AUTH).text
        assert f"/admin/readers/{reader}/{action}\"" not in page
        before = _status_and_history(engine, email)
        token = _token(console, f"/admin/readers/{reader}/forget")
        response = _post(console, f"/admin/readers/{reader}/{action}", "please", token=token)
        assert response.status_code == 422
        assert _status_and_history(engine, email) == before
    assert "only be lifted from the command line" in response.text


def test_an_action_needs_a_reason(console, engine):
    reader = _reader_id(engine, "r5@gmail.com")
    response = _post(console, f"/admin/readers/{reader}/unsubscribe", "  ")
    assert response.status_code == 422 and "give a reason" in response.text
    assert _status_and_history(engine, "r5@gmail.com")[0] == "active"
    done = _post(console, f"/admin/readers/{reader}/unsubscribe", "asked by reply to 644")
    assert done.status_code == 303
    status, changes = _status_and_history(engine, "r5@gmail.com")
    assert status == "unsubscribed" and changes[-1][2]["reason"] == "asked by reply to 644"


def test_forget_erases_the_reader(console, engine):
    from mailer.store.db import session
    from mailer.store.subscribers import is_forgotten

    reader = _reader_id(engine, "r6@gmail.com")
    response = _post(console, f"/admin/readers/{reader}/forget", "GDPR erasure request #12")
    assert response.status_code == 303 and response.headers["location"].endswith("done=forget")
    assert _reader_id(engine, "r6@gmail.com") is None
    with session(engine) as db:
        assert is_forgotten(db, "r6@gmail.com")
    assert console.get(f"/admin/readers/{reader}", headers=AUTH).status_code == 404


def test_a_cross_site_post_is_refused(console, engine):
    reader = _reader_id(engine, "r7@gmail.com")
    path = f"/admin/readers/{reader}/unsubscribe"
    token = _token(console, path)
    attempts = [
        dict(token=""),  # a forged form cannot know the token
        dict(token="0" * 64),
        dict(token=token, Origin="https://evil.example"),
        dict(token=token, **{"Sec-Fetch-Site": "cross-site"}),
        dict(token=token, Origin="null"),
    ]
    for attempt in attempts:
        response = _post(console, path, "forged", **attempt)
        assert response.status_code == 403, attempt
    assert _status_and_history(engine, "r7@gmail.com")[0] == "active"
    # another operator's token does not fit either
    other = basic_auth(USER, PASSWORD + " but another")
    assert console.get(path, headers=other).status_code == 401


def test_operator_actions_are_rate_limited(console, engine):
    reader = _reader_id(engine, "r8@gmail.com")
    path = f"/admin/readers/{reader}/unsubscribe"
    token = _token(console, path)
    answers = [_post(console, path, "", token=token).status_code for _ in range(21)]
    assert answers[:20] == [422] * 20 and answers[20] == 429


def test_events_filter_by_type_and_show_the_raw_payload(console):
    html = console.get("/admin/events", params={"kind": "bounce"}, headers=AUTH).text
    kinds = re.findall(r'<tr data-event="\d+"><td class="left">[^<]*</td><td class="left"><a[^>]*>'
                       r'(\w+)<', html)
    assert kinds and set(kinds) == {"bounce"}
    assert "complaint" in console.get("/admin/events", headers=AUTH).text
    soft_row = re.search(rf'<tr data-event="\d+">(?:(?!</tr>).)*{SOFT}', html).group(0)
    raw_link = re.search(r'href="(/admin/events/\d+)" aria-label="Raw payload', soft_row).group(1)
    event = console.get(raw_link, headers=AUTH).text
    assert "<pre" in event and "&#34;eventType&#34;: &#34;Bounce&#34;" in event
    # an unknown type is ignored, not an error
    assert console.get("/admin/events", params={"kind": "<x>"}, headers=AUTH).status_code == 200
