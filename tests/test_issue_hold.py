"""Issue 25 §2: the editors' preview carries signed Hold and preview-page links; a held issue is
sent by no `mailer send` until `--release`; a changed issue gets a correction preview."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.mailer_cli import mailer, outbox

pytestmark = pytest.mark.slow

EDITORS = "editors@example.org"
READERS = ("ann@example.org", "bob@example.org")


def write_issue(folder: Path, number: int, day: str, words: str = "written for the hold test") -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{day}-this-week-in-rust.md").write_text(
        f"Title: This Week in Rust {number}\nNumber: {number}\nDate: {day}\n\n"
        f"Hello and welcome to issue {number}, {words}.\n")


@pytest.fixture
def env(mailer_env, tmp_path, monkeypatch) -> dict:
    env = {**mailer_env, "MAILER_ISSUES_DIR": str(tmp_path / "issues"), "MAILER_PREVIEW_TO": EDITORS}
    monkeypatch.setenv("MAILER_ISSUES_DIR", env["MAILER_ISSUES_DIR"])  # for the web app in process
    for reader in READERS:
        assert mailer(env, "subscribers", "add", reader, "--confirmed").returncode == 0
    return env


def cron(env: dict, *extra: str) -> subprocess.CompletedProcess:
    result = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "24h", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def links_in(message) -> dict[str, str]:
    text = message.get_body(("plain",)).get_content()
    return {"hold": re.search(r"Hold the send: (\S+)", text).group(1),
            "page": re.search(r"Open the preview page: (\S+)", text).group(1)}


def readers_mailed(env: dict) -> list[str]:
    return [m["To"] for m in outbox(env) if m["To"] in READERS]


def hold_issue(env: dict, hold_url: str) -> None:
    """The POST the hold page's button makes, through the web app in process."""
    from fastapi.testclient import TestClient

    from mailer.config import get_settings
    from mailer.web.app import create_app

    get_settings.cache_clear()
    path = hold_url.removeprefix(env["MAILER_BASE_URL"])
    with TestClient(create_app(get_settings()), base_url=env["MAILER_BASE_URL"]) as client:
        assert "Hold the send" in client.get(path).text
        done = client.post(path)
    assert done.status_code == 200 and "held" in done.text.lower(), done.text


def test_the_preview_mail_carries_the_hold_and_page_links(env, tmp_path):
    write_issue(tmp_path / "issues", 700, "2099-01-07")
    cron(env)
    [preview] = outbox(env)
    links = links_in(preview)
    assert links["hold"].startswith("http://127.0.0.1:8000/hold/")
    assert links["page"].startswith("http://127.0.0.1:8000/preview/")
    html = preview.get_body(("html",)).get_content()
    assert "Hold the send</a>" in html and "Open the preview page</a>" in html
    assert "2099-01-08 00:00 UTC" in html  # the planned send: a day after the issue's date


def test_hold_then_the_timer_sends_nothing_then_release_sends_once(env, tmp_path):
    write_issue(tmp_path / "issues", 701, "2026-01-07")  # due: the timer would send it now
    # a preview run before it is due, as the timer meets it a day early
    first = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    assert "preview of issue 701 sent" in first.stdout
    [preview] = outbox(env)
    hold_issue(env, links_in(preview)["hold"])

    for _ in range(2):  # every later timer run: held, nothing sent, exit 0 for systemd
        held = cron(env)
        assert re.search(r"issue 701 is held by editors@example\.org at \d{4}-\d\d-\d\d \d\d:\d\d UTC; "
                         r"`mailer send --issue 701 --release` to release", held.stdout), held.stdout
    assert readers_mailed(env) == []
    assert "held by editors@example.org" in mailer(env, "send", "--issue", "701", "--dry-run").stdout

    released = mailer(env, "send", "--issue", "701", "--release", "--yes")
    assert released.returncode == 0, released.stderr
    assert "released issue 701, held by editors@example.org" in released.stdout
    assert sorted(readers_mailed(env)) == sorted(READERS)
    cron(env)
    assert sorted(readers_mailed(env)) == sorted(READERS)  # one send, not two
    [campaign] = json.loads(mailer(env, "stats", "--json").stdout)["campaigns"]
    assert campaign["sent"] == 2


def test_a_release_before_the_planned_time_waits_for_it(env, tmp_path):
    write_issue(tmp_path / "issues", 702, "2099-01-07")
    cron(env)
    hold_issue(env, links_in(outbox(env)[0])["hold"])
    released = mailer(env, "send", "--issue", "702", "--release", "--yes")
    assert released.returncode == 0 and "released issue 702" in released.stdout
    assert "not due yet" in released.stdout and "2099-01-08 00:00 UTC" in released.stdout
    assert readers_mailed(env) == []
    assert "not due yet" in cron(env).stdout  # no longer held: only the time keeps it


def test_release_of_an_issue_not_held_says_so(env, tmp_path):
    write_issue(tmp_path / "issues", 703, "2099-01-07")
    result = mailer(env, "send", "--issue", "703", "--release", "--yes", "--not-before", "24h")
    assert result.returncode == 0 and "issue 703 was not held: nothing to release" in result.stdout


def test_release_with_dry_run_is_refused_in_one_line(env, tmp_path):
    write_issue(tmp_path / "issues", 704, "2099-01-07")
    result = mailer(env, "send", "--issue", "704", "--release", "--dry-run")
    assert result.returncode != 0 and result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1 and outbox(env) == []


def test_a_changed_issue_gets_a_correction_and_the_send_uses_it(env, tmp_path):
    issues = tmp_path / "issues"
    write_issue(issues, 705, "2026-01-07", "with a typo in it")
    mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    unchanged = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    assert "preview" not in unchanged.stdout and len(outbox(env)) == 1

    write_issue(issues, 705, "2026-01-07", "with the typo fixed")  # a fix merged
    corrected = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    assert "correction of issue 705's preview sent to editors@example.org" in corrected.stdout
    first, correction = outbox(env)
    assert first["Subject"].startswith("[Preview] ")
    assert correction["Subject"].startswith("[Correction] [Preview] This Week in Rust 705")
    assert "with the typo fixed" in " ".join(correction.get_body(("plain",)).get_content().split())
    again = mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    assert "correction" not in again.stdout and len(outbox(env)) == 2  # once per change

    cron(env)
    mail = [m for m in outbox(env) if m["To"] in READERS]
    assert len(mail) == 2
    assert all("with the typo fixed" in " ".join(m.get_body(("plain",)).get_content().split())
               for m in mail)


def web_client(env: dict):
    from fastapi.testclient import TestClient

    from mailer.config import get_settings
    from mailer.web.app import create_app

    get_settings.cache_clear()
    return TestClient(create_app(get_settings()), base_url=env["MAILER_BASE_URL"])


def sent_nothing_and_held_nothing(env: dict, number: int) -> bool:
    dry = mailer(env, "send", "--issue", str(number), "--dry-run").stdout
    return "held" not in dry and readers_mailed(env) == []


def test_opening_the_hold_link_changes_nothing(env, tmp_path):
    write_issue(tmp_path / "issues", 720, "2099-01-07")
    cron(env)
    path = links_in(outbox(env)[0])["hold"].removeprefix(env["MAILER_BASE_URL"])
    with web_client(env) as client:
        for _ in range(3):  # a mail scanner, a link preview, the editor
            page = client.get(path)
            assert page.status_code == 200 and "Opening this page changed nothing" in page.text
            assert "content-security-policy" in page.headers
    assert sent_nothing_and_held_nothing(env, 720)


def test_a_forged_expired_or_preview_token_gets_a_clear_page_and_holds_nothing(env, tmp_path):
    from mailer.tokens import make_issue_token
    from tests.conftest import TEST_SECRET

    write_issue(tmp_path / "issues", 721, "2099-01-07")
    cron(env)
    links = links_in(outbox(env)[0])
    base = env["MAILER_BASE_URL"]
    expired = make_issue_token(TEST_SECRET, "hold", 721, EDITORS, expires_at=1_000_000)
    other_key = make_issue_token("another-secret-key-0123456789", "hold", 721, EDITORS, 4_000_000_000)
    with web_client(env) as client:
        for path, status, title in (
                ("/hold/" + links["hold"].rsplit("/", 1)[1][:-3] + "xyz", 400, "This link is not valid"),
                ("/hold/" + other_key, 400, "This link is not valid"),
                (links["page"].removeprefix(base).replace("/preview/", "/hold/"), 400, "This link is not valid"),
                ("/hold/" + expired, 410, "This link has expired")):
            answer = client.post(path)
            assert answer.status_code == status and title in answer.text, (path, answer.text)
        assert client.get(links["hold"].removeprefix(base).replace("/hold/", "/preview/")).status_code == 400
    assert sent_nothing_and_held_nothing(env, 721)


def test_a_hold_after_the_send_started_is_too_late_and_changes_nothing(env, tmp_path):
    write_issue(tmp_path / "issues", 722, "2026-01-07")
    mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    hold_link = links_in(outbox(env)[0])["hold"]
    cron(env)  # due: sent to the readers
    with web_client(env) as client:
        answer = client.post(hold_link.removeprefix(env["MAILER_BASE_URL"]))
    assert answer.status_code == 409 and "already being sent" in answer.text
    assert "held" not in mailer(env, "send", "--issue", "722", "--dry-run").stdout


def test_the_preview_page_shows_the_issue_and_its_planned_send(env, tmp_path):
    write_issue(tmp_path / "issues", 723, "2099-01-07")
    cron(env)
    with web_client(env) as client:
        page = client.get(links_in(outbox(env)[0])["page"].removeprefix(env["MAILER_BASE_URL"]))
    assert page.status_code == 200
    assert "This Week in Rust 723" in page.text and "2099-01-08 00:00 UTC" in page.text
    assert "written for the hold test" in page.text
    with web_client(env) as client:
        mail = client.get(links_in(outbox(env)[0])["page"].removeprefix(env["MAILER_BASE_URL"]) + "/mail")
        hold_as_mail = client.get(links_in(outbox(env)[0])["hold"].removeprefix(env["MAILER_BASE_URL"])
                                  .replace("/hold/", "/preview/") + "/mail")
    assert mail.status_code == 200 and "written for the hold test" in mail.text
    csp = mail.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert hold_as_mail.status_code == 400


OPERATOR, OPERATOR_PASSWORD = "operator", "a long operator password"


def console_client(env: dict, monkeypatch):
    monkeypatch.setenv("MAILER_ADMIN_USER", OPERATOR)
    monkeypatch.setenv("MAILER_ADMIN_PASSWORD", OPERATOR_PASSWORD)
    client = web_client(env)
    client.auth = (OPERATOR, OPERATOR_PASSWORD)
    return client


def steps(html: str) -> list[str]:
    return re.findall(r'data-step="(\w+)"', html)


def test_the_console_shows_the_timeline_and_its_button_releases(env, tmp_path, monkeypatch):
    write_issue(tmp_path / "issues", 730, "2026-01-07")
    mailer(env, "send", "--issue", "latest", "--yes", "--not-before", "99999h")
    hold_issue(env, links_in(outbox(env)[0])["hold"])
    cron(env)  # held: nothing sent
    with console_client(env, monkeypatch) as console:
        held = console.get("/admin/issues/730")
        assert held.status_code == 200, held.text
        assert "Held by <strong>editors@example.org</strong>" in held.text
        assert steps(held.text) == ["planned", "found", "preview", "held"]  # planned: 2026-01-08
        forged = console.post("/admin/issues/730/release", data={"csrf_token": "0" * 64},
                              follow_redirects=False)
        assert forged.status_code == 403
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', held.text).group(1)
        done = console.post("/admin/issues/730/release", data={"csrf_token": token},
                            follow_redirects=False)
        assert done.status_code == 303
        after = console.get(done.headers["location"]).text
        assert "Held by" not in after and "Released</strong>" in after
        assert "by operator (console) (held by editors@example.org" in after
    cron(env)  # the planned time passed: the timer sends it now, once
    cron(env)
    assert sorted(readers_mailed(env)) == sorted(READERS)
    with console_client(env, monkeypatch) as console:
        sent = console.get("/admin/issues/730").text
    assert steps(sent)[-2:] == ["started", "sent"] and "released" in steps(sent)


def test_the_console_page_of_an_issue_never_met_is_still_a_404(env, monkeypatch):
    with console_client(env, monkeypatch) as console:
        assert console.get("/admin/issues/731").status_code == 404


def hold_release_cycle(url: str) -> list[object]:
    """One issue held twice (the second editor finds it held), released twice (the second
    finds nothing), with a preview whose version and planned time the store keeps."""
    from datetime import UTC, datetime

    from mailer.store import advance_copies, issue_timeline
    from mailer.store.db import get_engine

    engine = get_engine(url)
    planned = datetime(2099, 1, 8, tzinfo=UTC)
    advance_copies.claim(engine, 740, EDITORS, "v1", planned)
    advance_copies.mark_sent(engine, 740, "id-1")
    first, made = issue_timeline.hold(engine, 740, EDITORS)
    again, made_again = issue_timeline.hold(engine, 740, "other@example.org")
    lifted = issue_timeline.release(engine, 740, "operator")
    steps = [made, made_again, again.held_by, lifted.held_by,
             issue_timeline.release(engine, 740, "operator"),
             advance_copies.claim_correction(engine, 740, "v1", "v2"),
             advance_copies.claim_correction(engine, 740, "v1", "v2"),
             [s.kind for s in issue_timeline.timeline(engine, 740)]]
    advance_copies.set_planned(engine, 740, None)
    steps.append(advance_copies.get(engine, 740).planned_send_at)
    return steps


CYCLE = [True, False, EDITORS, EDITORS, None, True, False, ["held", "released", "planned"], None]


def test_a_hold_is_one_row_and_a_release_lifts_it_once_on_sqlite(mailer_env):
    assert hold_release_cycle(mailer_env["MAILER_DATABASE_URL"]) == CYCLE


@pytest.mark.postgres
def test_a_hold_is_one_row_and_a_release_lifts_it_once_on_postgresql(pg_url):
    assert hold_release_cycle(pg_url) == CYCLE


@pytest.mark.postgres
def test_the_hold_migration_goes_down_and_up_on_postgresql(pg_url):
    from alembic import command

    from mailer.store.db import (
        alembic_config, current_revision, head_revision, make_engine, upgrade,
    )

    engine = make_engine(pg_url)
    upgrade(engine)
    with engine.connect() as connection:
        cfg = alembic_config(pg_url)
        cfg.attributes["connection"] = connection
        with connection.begin():
            command.downgrade(cfg, "0007_rate_limit_hits")
    assert current_revision(engine) == "0007_rate_limit_hits"
    upgrade(engine)
    assert current_revision(engine) == head_revision()  # the newest migration, whichever
    engine.dispose()


def test_the_editor_links_are_rate_limited_per_network(env, tmp_path):
    from mailer.web.editor_links import EDITOR_LINKS_PER_MINUTE

    write_issue(tmp_path / "issues", 741, "2099-01-07")
    cron(env)
    path = links_in(outbox(env)[0])["hold"].removeprefix(env["MAILER_BASE_URL"])
    with web_client(env) as client:
        answers = [client.get(path).status_code for _ in range(EDITOR_LINKS_PER_MINUTE)]
        refused = client.post(path)
    assert set(answers) == {200}
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert sent_nothing_and_held_nothing(env, 741)


def test_an_issue_sent_without_previews_has_found_started_and_sent(env, tmp_path, monkeypatch):
    write_issue(tmp_path / "issues", 742, "2026-01-07")
    cron({**env, "MAILER_PREVIEW_TO": ""})
    with console_client(env, monkeypatch) as console:
        page = console.get("/admin/issues/742").text
    assert steps(page) == ["found", "started", "sent"]
    assert "(planned send 2026-01-08 00:00 UTC)" in page  # what the timer's --not-before made it
