"""MAILER_ISSUE_SOURCE: each source against a real local peer (a bare git repository, a web site
serving a feed and pages, a fake PDS serving records). For each: the hourly cron finds the latest
issue, renders it and sends it once across two runs, reusing its cache on the second; an outage
sends nothing and says so in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mailer_cli import mailer, outbox

from tests.plugins.processes import free_port, stop_process
from tests.source_peers import DID, FIXTURES, Peer, start_peer

pytestmark = [pytest.mark.slow, pytest.mark.peer]

CRON = ("send", "--issue", "latest", "--yes", "--not-before", "0h")


@pytest.fixture
def site(tmp_path):
    root, log, port = tmp_path / "site", tmp_path / "site.log", free_port()
    shutil.copytree(FIXTURES / "site", root)
    process = start_peer("tests.peers.issue_site", "--root", str(root), "--port", str(port), "--log", str(log))
    yield Peer(f"http://127.0.0.1:{port}", root, log, process)
    stop_process(process)


@pytest.fixture
def pds(tmp_path):
    root, log, port = tmp_path / "pds", tmp_path / "pds.log", free_port()
    shutil.copytree(FIXTURES / "records", root)
    process = start_peer("tests.peers.fake_pds", "--did", DID, "--records", str(root), "--port", str(port),
                         "--log", str(log), "--page-size", "2")
    yield Peer(f"http://127.0.0.1:{port}", root, log, process)
    stop_process(process)


@pytest.fixture
def cron_env(mailer_env, tmp_path) -> dict[str, str]:
    env = {**mailer_env, "MAILER_SOURCE_CACHE_DIR": str(tmp_path / "cache"), "MAILER_SOURCE_RETRIES": "2",
           "MAILER_SOURCE_TIMEOUT": "5", "MAILER_ISSUES_DIR": str(tmp_path / "no-such-folder"),
           # The peers listen on 127.0.0.1, which the sources refuse by default (issue 19).
           "MAILER_SOURCE_ALLOW_PRIVATE": "1"}
    assert mailer(env, "subscribers", "add", "reader@example.org", "--confirmed").returncode == 0
    return env


def assert_sent_once_across_two_runs(env: dict, number: int, words: str) -> None:
    first = mailer(env, *CRON)
    assert first.returncode == 0, first.stdout + first.stderr
    [message] = outbox(env)
    assert message["To"] == "reader@example.org"
    assert message["Subject"].startswith(f"This Week in Rust {number}")
    assert words in " ".join(message.get_body(("plain",)).get_content().split())
    second = mailer(env, *CRON)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already" in second.stdout
    assert len(outbox(env)) == 1


def assert_outage_sends_nothing(env: dict, expected_start: str) -> None:
    result = mailer(env, *CRON)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected_start}"), result.stderr
    assert outbox(env) == []
    assert campaign_count(env) == 0


def campaign_count(env: dict) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["MAILER_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM campaign")).scalar_one()
    finally:
        engine.dispose()


# -- git ---------------------------------------------------------------------------------------

def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def issue_markdown(number: int, day: str) -> str:
    return (f"Title: This Week in Rust {number}\nNumber: {number}\nDate: {day}\nCategory: This Week in Rust\n\n"
            f"Hello and welcome to issue {number}, written for mailer's git source test.\n\n"
            f"## Updates from Rust Community\n\n* [The Ferris Gazette #{number}](https://example.org/gazette/{number})\n")


@pytest.fixture
def repository(tmp_path) -> tuple[Path, Path]:
    """A bare repository (the remote) and a working clone to push new issues from."""
    bare, work = tmp_path / "twir.git", tmp_path / "twir-work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(work))
    (work / "content").mkdir()
    (work / "README.md").write_text("not an issue\n")
    (work / "content" / "2026-03-05-this-week-in-rust.md").write_text(issue_markdown(670, "2026-03-05"))
    (work / "content" / "2026-03-12-this-week-in-rust.md").write_text(issue_markdown(671, "2026-03-12"))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "two issues")
    git(work, "push", "-q", "origin", "HEAD:main")
    return bare, work


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_source_sends_the_latest_issue_once_and_fetches_new_ones(cron_env, repository, tmp_path):
    bare, work = repository
    env = {**cron_env, "MAILER_ISSUE_SOURCE": "git", "MAILER_SOURCE_GIT_URL": str(bare),
           "MAILER_SOURCE_GIT_BRANCH": "main"}
    assert_sent_once_across_two_runs(env, 671, "issue 671, written for mailer's git source test")
    checkout = next((tmp_path / "cache" / "git").iterdir())
    assert sorted(p.name for p in checkout.iterdir() if not p.name.startswith(".")) == ["content"]  # sparse

    (work / "content" / "2026-03-19-this-week-in-rust.md").write_text(issue_markdown(672, "2026-03-19"))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "issue 672")
    git(work, "push", "-q", "origin", "HEAD:main")
    third = mailer(env, *CRON)
    assert third.returncode == 0, third.stderr
    assert [m["Subject"].split(":")[0] for m in outbox(env)] == ["This Week in Rust 671", "This Week in Rust 672"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_source_does_not_follow_symlinks_out_of_the_checkout(cron_env, repository, tmp_path):
    """Issue 19 item 8a: a link in content/ to a file elsewhere on the machine is not an issue."""
    bare, work = repository
    (tmp_path / "secret-998.md").write_text(issue_markdown(998, "2026-03-19").replace("Hello", "SECRET absolute"))
    (tmp_path / "secret-999.md").write_text(issue_markdown(999, "2026-03-26").replace("Hello", "SECRET relative"))
    (work / "content" / "2026-03-19-this-week-in-rust.md").symlink_to(tmp_path / "secret-998.md")
    # From the checkout, cache/git/<digest>/content/, four levels up is tmp_path.
    (work / "content" / "2026-03-26-this-week-in-rust.md").symlink_to("../../../../secret-999.md")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "two links")
    git(work, "push", "-q", "origin", "HEAD:main")
    env = {**cron_env, "MAILER_ISSUE_SOURCE": "git", "MAILER_SOURCE_GIT_URL": str(bare),
           "MAILER_SOURCE_GIT_BRANCH": "main"}
    for number in (998, 999):
        result = mailer(env, "render", "--issue", str(number), "--out", str(tmp_path / "out"))
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith(f"error: no issue {number} in "), result.stderr
        assert "SECRET" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()
    latest = mailer(env, "render", "--issue", "latest", "--out", str(tmp_path / "out"))
    assert latest.returncode == 0, latest.stderr
    assert [p.name for p in (tmp_path / "out").glob("*.txt")] == ["671.txt"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_outage_sends_nothing_and_says_so_in_one_line(cron_env, tmp_path):
    env = {**cron_env, "MAILER_ISSUE_SOURCE": "git", "MAILER_SOURCE_GIT_URL": str(tmp_path / "gone.git"),
           "MAILER_SOURCE_GIT_BRANCH": "main"}
    assert_outage_sends_nothing(env, "issue source git: git clone of ")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_source_works_as_shipped_with_the_relative_default_cache_dir(mailer_env, tmp_path):
    """Issue 19 item 7: the default MAILER_SOURCE_CACHE_DIR (.mailer-cache) is relative to the
    folder mailer runs in; the clone must land there, not in a folder nested inside it."""
    work = tmp_path / "twir"  # a plain repository (git init), read through a file:// URL
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "content").mkdir()
    (work / "content" / "2026-03-12-this-week-in-rust.md").write_text(issue_markdown(671, "2026-03-12"))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "one issue")
    env = {**mailer_env, "MAILER_ISSUE_SOURCE": "git", "MAILER_SOURCE_GIT_URL": work.as_uri(),
           "MAILER_SOURCE_GIT_BRANCH": "main"}
    assert "MAILER_SOURCE_CACHE_DIR" not in env
    result = mailer(env, "render", "--issue", "671", "--out", "out")
    assert result.returncode == 0, result.stderr
    assert "issue 671, written for mailer's git source test" in (tmp_path / "out" / "671.txt").read_text()
    [checkout] = (tmp_path / ".mailer-cache" / "git").iterdir()
    assert (checkout / "content" / "2026-03-12-this-week-in-rust.md").is_file()
    again = mailer(env, "render", "--issue", "671", "--out", "out")  # the fetch path, same folder
    assert again.returncode == 0, again.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_failing_git_says_what_git_said_not_that_git_is_missing(mailer_env, tmp_path):
    env = {**mailer_env, "MAILER_ISSUE_SOURCE": "git", "MAILER_SOURCE_GIT_URL": (tmp_path / "gone").as_uri(),
           "MAILER_SOURCE_GIT_BRANCH": "main", "MAILER_SOURCE_RETRIES": "1"}
    result = mailer(env, "render", "--issue", "671")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: issue source git: git clone of file://") and "not installed" not in line
    assert "does not appear to be a git repository" in line or "not found" in line, line


# -- the site's feed ---------------------------------------------------------------------------

def feed_env(cron_env: dict, site: Peer, feed: str = "all.atom.xml") -> dict:
    return {**cron_env, "MAILER_ISSUE_SOURCE": "feed", "MAILER_SOURCE_FEED_URL": f"{site.url}/feeds/{feed}"}


def test_feed_source_sends_the_latest_issue_once_and_revalidates_its_cache(cron_env, site):
    env = feed_env(cron_env, site)
    assert_sent_once_across_two_runs(env, 671, "Hello and welcome to issue 671 of")
    [message] = outbox(env)
    html = message.get_body(("html",)).get_content()
    assert "track()" not in html and "https://twir.example.org/blog/archives/" in html
    requests = site.requests()
    assert all(line.split(" ", 3)[3].startswith("mailer/") for line in requests)  # User-Agent
    statuses = [(line.split()[1], line.split()[2]) for line in requests]
    page = "/blog/2026/03/12/this-week-in-rust-671/"
    assert statuses == [("/feeds/all.atom.xml", "200"), (page, "200"),
                        ("/feeds/all.atom.xml", "304"), (page, "304")]


def test_feed_source_reads_rss_and_an_issue_by_number(cron_env, site, tmp_path):
    rss = site.root / "feeds" / "all.rss.xml"  # RSS links are absolute: point them at this site
    rss.write_text(rss.read_text().replace("https://twir.example.org", site.url))
    env = feed_env(cron_env, site, "all.rss.xml")
    result = mailer(env, "render", "--issue", "670", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "issue 670 of" in (tmp_path / "out" / "670.txt").read_text()
    missing = mailer(env, "render", "--issue", "999")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no issue 999 in the feed")


def test_feed_outage_or_a_missing_page_sends_nothing(cron_env, site):
    env = feed_env(cron_env, site)
    (site.root / "blog" / "2026" / "03" / "12" / "this-week-in-rust-671" / "index.html").unlink()
    assert_outage_sends_nothing(env, "issue source feed: http://127.0.0.1:")
    stop_process(site.process)
    assert_outage_sends_nothing(env, "issue source feed: cannot fetch http://127.0.0.1:")


# -- standard.site records on AT Protocol ------------------------------------------------------

def atproto_env(cron_env: dict, pds: Peer) -> dict:
    return {**cron_env, "MAILER_ISSUE_SOURCE": "atproto", "MAILER_SOURCE_PDS_URL": pds.url,
            "MAILER_SOURCE_ATPROTO_REPO": DID}


def test_atproto_source_sends_the_latest_record_once_reading_one_page_on_the_second_run(cron_env, pds):
    env = atproto_env(cron_env, pds)
    first = mailer(env, *CRON)
    assert first.returncode == 0, first.stderr
    pages_first_run = len(pds.requests())
    assert pages_first_run == 3  # five records, two per page
    second = mailer(env, *CRON)
    assert second.returncode == 0 and "already" in second.stdout
    assert len(pds.requests()) == pages_first_run + 1
    [message] = outbox(env)
    assert message["Subject"].startswith("This Week in Rust 671")
    text = " ".join(message.get_body(("plain",)).get_content().split())
    assert "Hello and welcome to issue 671" in text and "https://twir.example.org/blog/2026/03/12/this-week-in-rust-671/" in text
    assert all(" mailer/" in line for line in pds.requests())


def test_atproto_source_finds_an_older_issue_and_refuses_a_wrong_repo(cron_env, pds, tmp_path):
    env = atproto_env(cron_env, pds)
    result = mailer(env, "render", "--issue", "668", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "issue 668" in (tmp_path / "out" / "668.txt").read_text()
    wrong = mailer({**env, "MAILER_SOURCE_ATPROTO_REPO": "did:plc:someoneelse"}, *CRON)
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [wrong.stderr.strip()]
    assert "answered HTTP 400" in wrong.stderr and outbox(env) == []


def test_atproto_outage_sends_nothing_and_says_so_in_one_line(cron_env, pds):
    stop_process(pds.process)
    assert_outage_sends_nothing(atproto_env(cron_env, pds), "issue source atproto: cannot fetch http://127.0.0.1:")


def test_a_source_without_its_setting_is_a_one_line_config_error(cron_env):
    result = mailer({**cron_env, "MAILER_ISSUE_SOURCE": "feed"}, *CRON)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: MAILER_ISSUE_SOURCE=feed needs MAILER_SOURCE_FEED_URL"


# -- the polite fetcher, against the same web site ---------------------------------------------

def test_fetcher_retries_a_busy_server_but_not_a_missing_page(site, tmp_path):
    from mailer.errors import SourceError
    from mailer.sources.http import Fetcher, FetchPolicy

    fetcher = Fetcher("feed", tmp_path / "cache", FetchPolicy(timeout=5, tries=3, backoff=0.05,
                                                                 allow_private=True))
    with pytest.raises(SourceError, match=r"^issue source feed: cannot fetch .*/status/503: HTTP 503 \(3 tries\)$"):
        fetcher.get(f"{site.url}/status/503")
    assert [line.split()[1] for line in site.requests()] == ["/status/503"] * 3
    with pytest.raises(SourceError, match=r"/status/404 answered HTTP 404$"):
        fetcher.get(f"{site.url}/status/404")
    assert len(site.requests()) == 4  # a 404 is an answer, not an outage: asked once


@pytest.mark.corpus
def test_the_seed_record_of_issue_644_is_found_through_a_pds(shared_dir, cron_env, pds, tmp_path):
    seed = shared_dir / "seed" / "this-week-in-rust-644.standard-site.json"
    (pds.root / "site.standard.document" / "3m9zzzzzzzz22.json").write_bytes(seed.read_bytes())
    result = mailer(atproto_env(cron_env, pds), "render", "--issue", "644", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "644.txt").read_text().startswith("This Week in Rust 644\n")
