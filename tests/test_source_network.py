"""Issue 19: what the network sources may fetch, and how much and for how long.

The feed source fetches only from the feed's own site (its redirects too, at most five), and
never from a private, loopback or link-local address unless MAILER_SOURCE_ALLOW_PRIVATE=1 says
so: the test servers are on 127.0.0.1, so every test here that needs them sets it explicitly.
Each fetch has an overall deadline and a body limit, enforced while reading, and the AT Protocol
source keeps one page of records in memory, not everything it has read."""

from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest

from tests.mailer_cli import mailer
from tests.plugins.processes import free_port, stop_process
from tests.source_peers import DID, FIXTURES, Peer, start_peer

pytestmark = [pytest.mark.slow, pytest.mark.peer]

ALLOW = {"MAILER_SOURCE_ALLOW_PRIVATE": "1"}
INTERNAL_WORDS = "internal admin page, never to be mailed"


def start_site(tmp_path: Path, name: str) -> Peer:
    root, log, port = tmp_path / name, tmp_path / f"{name}.log", free_port()
    shutil.copytree(FIXTURES / "site", root)
    process = start_peer("tests.peers.issue_site", "--root", str(root), "--port", str(port), "--log", str(log))
    return Peer(f"http://127.0.0.1:{port}", root, log, process)


@pytest.fixture
def sites(tmp_path):
    """The newsletter's site, and an internal one (another port) holding an <article> page."""
    public, internal = start_site(tmp_path, "site"), start_site(tmp_path, "internal")
    page = internal.root / "admin" / "index.html"
    page.parent.mkdir()
    page.write_text(f"<html><head><title>This Week in Rust 672</title></head>"
                    f"<body><article><p>{INTERNAL_WORDS}</p></article></body></html>")
    yield public, internal
    stop_process(public.process)
    stop_process(internal.process)


@pytest.fixture
def source_env(mailer_env, tmp_path) -> dict[str, str]:
    return {**mailer_env, "MAILER_SOURCE_CACHE_DIR": str(tmp_path / "cache"), "MAILER_SOURCE_RETRIES": "1",
            "MAILER_SOURCE_TIMEOUT": "5", "MAILER_ISSUES_DIR": str(tmp_path / "no-such-folder")}


def feed_linking(site: Peer, number: int, href: str) -> str:
    """Add to the site's feed an entry for issue ``number`` whose link is ``href``."""
    feed = site.root / "feeds" / "all.atom.xml"
    entry = (f'<entry><title>This Week in Rust {number}</title><link href="{href.replace("&", "&amp;")}" '
             f'rel="alternate"/><id>tag:{number}</id></entry>\n</feed>')
    feed.write_text(feed.read_text().replace("</feed>", entry))
    return f"{site.url}/feeds/all.atom.xml"


def render(env: dict, number: int, out: Path):
    return mailer(env, "render", "--issue", str(number), "--out", str(out))


def one_error_line(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: issue source "), line
    return line


# -- item 3: the feed's links and redirects stay on the feed's site ----------------------------

def test_a_feed_entry_linking_to_another_port_or_host_is_not_fetched(source_env, sites, tmp_path):
    public, internal = sites
    feed_linking(public, 672, f"{internal.url}/admin/")
    url = feed_linking(public, 673, public.url.replace("127.0.0.1", "localhost") + "/blog/2026/03/12/this-week-in-rust-671/")
    env = {**source_env, **ALLOW, "MAILER_ISSUE_SOURCE": "feed", "MAILER_SOURCE_FEED_URL": url}
    for number in (672, 673):
        line = one_error_line(render(env, number, tmp_path / "out"))
        assert "not on the configured site" in line, line
    assert internal.requests() == []
    assert not (tmp_path / "out").exists()
    assert render(env, 671, tmp_path / "out").returncode == 0  # the site's own pages still work


def test_redirects_stay_on_the_site_and_stop_after_five(source_env, sites, tmp_path):
    public, internal = sites
    page = "/blog/2026/03/12/this-week-in-rust-671/"
    feed_linking(public, 672, f"/redirect?hops=1&to={internal.url}/admin/")
    feed_linking(public, 673, f"/redirect?hops=2&to={page}")
    url = feed_linking(public, 674, f"/redirect?hops=9&to={page}")
    env = {**source_env, **ALLOW, "MAILER_ISSUE_SOURCE": "feed", "MAILER_SOURCE_FEED_URL": url}
    off_site = one_error_line(render(env, 672, tmp_path / "out"))
    assert f"redirects to {internal.url}/admin/" in off_site and "not on the configured site" in off_site
    assert internal.requests() == []
    assert "more than 5 redirects" in one_error_line(render(env, 674, tmp_path / "out"))
    within = render(env, 673, tmp_path / "out")
    assert within.returncode == 0, within.stderr
    assert "issue 671 of" in (tmp_path / "out" / "671.txt").read_text()  # the page names its issue


def test_loopback_addresses_are_refused_after_resolving_unless_allowed(source_env, sites, tmp_path):
    public, _ = sites
    by_name = public.url.replace("127.0.0.1", "localhost") + "/feeds/all.atom.xml"
    env = {**source_env, "MAILER_ISSUE_SOURCE": "feed", "MAILER_SOURCE_FEED_URL": by_name}
    line = one_error_line(render(env, 671, tmp_path / "out"))
    assert "localhost resolves to" in line and "MAILER_SOURCE_ALLOW_PRIVATE=1" in line, line
    assert public.requests() == []  # refused before connecting
    allowed = render({**env, **ALLOW}, 671, tmp_path / "out")
    assert allowed.returncode == 0, allowed.stderr


def test_the_pds_and_git_addresses_follow_the_same_rule(source_env, tmp_path):
    pds = {**source_env, "MAILER_ISSUE_SOURCE": "atproto", "MAILER_SOURCE_PDS_URL": f"http://127.0.0.1:{free_port()}",
           "MAILER_SOURCE_ATPROTO_REPO": DID}
    assert "127.0.0.1 is a loopback address" in one_error_line(render(pds, 671, tmp_path / "out"))
    git = {**source_env, "MAILER_ISSUE_SOURCE": "git", "MAILER_SOURCE_GIT_BRANCH": "main",
           "MAILER_SOURCE_GIT_URL": "http://169.254.169.254/latest/meta-data.git"}
    assert "169.254.169.254 is a link-local address" in one_error_line(render(git, 671, tmp_path / "out"))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1"])
def test_addresses_of_the_machine_and_its_networks_are_refused(address):
    from mailer.sources.guard import address_problem

    assert address_problem(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:84e5"])
def test_public_addresses_are_allowed(address):
    from mailer.sources.guard import address_problem

    assert address_problem(address) is None


# -- item 8 (d): an overall deadline and a body limit per fetch --------------------------------

def fetcher(tmp_path: Path, timeout: float = 1.0):
    from mailer.sources.http import Fetcher, FetchPolicy

    return Fetcher("feed", tmp_path / "cache", FetchPolicy(timeout=timeout, tries=1, allow_private=True))


@pytest.mark.parametrize("path", ["/trickle?bytes=40&every=0.25", "/trickle-headers?bytes=40&every=0.25"])
def test_a_trickling_server_is_cut_off_at_the_overall_deadline(sites, tmp_path, path):
    """40 bytes, one every 0.25 s: each read is quick, the whole answer takes 10 s."""
    from mailer.errors import SourceError

    public, _ = sites
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"no complete answer within 1 s"):
        fetcher(tmp_path).get(public.url + path)
    assert time.monotonic() - started < 8  # far under the 10 s the server would take


def test_a_huge_body_is_refused_while_streaming_with_bounded_memory(sites, tmp_path):
    from mailer.errors import SourceError

    public, _ = sites
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=r"larger than"):
            fetcher(tmp_path, timeout=30).get(public.url + "/huge?mb=200")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024


# -- item 8 (c): the AT Protocol source keeps what it needs, not all it read --------------------

def test_the_atproto_source_does_not_keep_every_record_it_reads(tmp_path):
    from mailer.sources.atproto import AtprotoSource
    from mailer.sources.http import Fetcher, FetchPolicy

    records = tmp_path / "records" / "site.standard.document"
    shutil.copytree(FIXTURES / "records", tmp_path / "records")
    template = json.loads(next(records.glob("*.json")).read_text())
    for index in range(40):  # 40 documents of 1 MiB each, two per page: 20 pages
        value = {**template, "title": f"This Week in Rust {900 + index}", "padding": "x" * 1024 * 1024}
        (records / f"3zzz{index:04d}.json").write_text(json.dumps(value))
    port = free_port()
    process = start_peer("tests.peers.fake_pds", "--did", DID, "--records", str(tmp_path / "records"),
                         "--port", str(port), "--log", str(tmp_path / "pds.log"), "--page-size", "2")
    policy = FetchPolicy(timeout=30, tries=1, allow_private=True)
    source = AtprotoSource(f"http://127.0.0.1:{port}", DID, Fetcher("atproto", tmp_path / "cache", policy),
                           tmp_path / "cache")
    try:
        tracemalloc.start()
        try:
            issue = source.load(900)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert issue.number == 900
        assert peak < 30 * 1024 * 1024  # all 40 records would be over 40 MiB
        assert source.load(939).number == 939  # a record read on the first run, from the cache
    finally:
        stop_process(process)
