"""Issue 8, section 4: the subscribe form for another site (``/subscribe/embed``), and the return
URL allow-list that keeps it from ever being an open redirect."""

from __future__ import annotations

import html
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from mailer.config import get_settings
from mailer.web.app import create_app
from tests.fakes import RecordingTransport

SITE = "https://this-week-in-rust.org/newsletter/"
ALLOWED = [SITE, "http://127.0.0.1:8123/"]


@pytest.fixture
def client(mailer_env, engine, monkeypatch):
    monkeypatch.setenv("MAILER_ALLOWED_RETURN_URLS", ",".join(ALLOWED))
    get_settings.cache_clear()
    app = create_app(get_settings())
    app.state.transport = RecordingTransport()
    return TestClient(app, follow_redirects=False)


@pytest.mark.parametrize("url", [
    SITE, SITE + "thanks?from=form#top", "HTTPS://This-Week-In-Rust.org/newsletter/welcome",
    "https://this-week-in-rust.org:443/newsletter/", "http://127.0.0.1:8123/welcome",
])
def test_return_urls_on_the_allow_list_are_followed(client, url):
    from mailer.web.embed import allowed_return_url

    back = allowed_return_url(url, ALLOWED)
    assert back is not None and back.lower().startswith(("https://this-week-in-rust.org/newsletter/",
                                                        "http://127.0.0.1:8123/"))
    response = client.post("/subscribe", data={"email": "reader@example.org", "return": url})
    assert response.status_code == 303 and response.headers["location"] == back


TRICKY = [
    "//evil.example/", "///evil.example/", "/\\evil.example", "\\\\evil.example",
    "https://evil.example@this-week-in-rust.org/newsletter/",
    "https://this-week-in-rust.org@evil.example/newsletter/",
    "https://this-week-in-rust.org.evil.example/newsletter/",
    "https://this-week-in-rust.org\\@evil.example/newsletter/",
    "https:\\\\this-week-in-rust.org/newsletter/", "https:/this-week-in-rust.org/newsletter/",
    "https://this-week-in-rust.org/newsletter-evil/", "https://this-week-in-rust.org/",
    "https://this-week-in-rust.org/newsletter/../admin", "https://this-week-in-rust.org/newsletter/%2e%2e/x",
    "https://this-week-in-rust.org/newsletter/./../x", "http://this-week-in-rust.org/newsletter/",
    "https://this-week-in-rust.org:8443/newsletter/", "javascript:alert(1)//https://this-week-in-rust.org/newsletter/",
    "data:text/html,<script>alert(1)</script>", "ftp://this-week-in-rust.org/newsletter/",
    " https://evil.example/", "https://evil.example/\thttps://this-week-in-rust.org/newsletter/",
    "https://this-week-in-rust.org/newsletter/\r\nLocation: https://evil.example/",
    "https://thіs-week-in-rust.org/newsletter/",  # Cyrillic і
    "https://this-week-in-rust.org%2eevil.example/newsletter/", "evil.example", "", "https://",
    "http://127.0.0.1:8124/", "http://localhost:8123/",
]


@pytest.mark.parametrize("url", TRICKY)
def test_tricky_return_urls_never_redirect_off_site(client, url):
    from mailer.web.embed import allowed_return_url

    back = allowed_return_url(url, ALLOWED)
    if back is not None:  # only a normalised URL inside an allowed prefix may come back
        assert back.startswith(SITE) and ".." not in back, back
    response = client.post("/subscribe", data={"email": "reader@example.org", "return": url})
    assert response.status_code == 303
    location = response.headers["location"]
    assert location == "/subscribe/thanks" or location.startswith(SITE), location


def test_without_an_allow_list_every_return_url_is_ignored(mailer_env, engine):
    app = create_app(get_settings())
    app.state.transport = RecordingTransport()
    client = TestClient(app, follow_redirects=False)
    response = client.post("/subscribe", data={"email": "reader@example.org", "return": SITE})
    assert response.headers["location"] == "/subscribe/thanks"


def test_the_embed_page_serves_a_snippet_posting_to_the_base_url(client):
    page = client.get("/subscribe/embed", params={"return": SITE + "thanks"})
    assert page.status_code == 200
    snippet = html.unescape(re.search(r'<pre id="snippet"><code>(.*?)</code></pre>', page.text, re.S).group(1))
    assert '<form method="post" action="http://127.0.0.1:8000/subscribe"' in snippet
    assert f'name="return" value="{SITE}thanks"' in snippet
    assert "<script" not in snippet and "style=" not in snippet  # works under the site's CSP
    refused = client.get("/subscribe/embed", params={"return": "https://evil.example/"})
    assert "not on the allow-list" in refused.text and "evil.example/\"" not in refused.text


# -- the snippet posted from another origin, in Chromium ----------------------------------------


class OtherSite:
    """A second origin (its own port) serving a page with the snippet, and a welcome page."""

    def __init__(self) -> None:
        self.page = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (site.page if self.path == "/" else
                        "<!doctype html><title>Welcome</title><h1>Welcome back</h1>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                # the site's own CSP: its forms may post to the newsletter, and (CSP checks
                # the redirect after the post too) come back to the site itself
                self.send_header("Content-Security-Policy",
                                 f"default-src 'none'; form-action 'self' {site.newsletter}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.newsletter = ""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def other_site():
    site = OtherSite()
    yield site
    site.close()


def _snippet_from(web_server: str, **params: str) -> str:
    import httpx

    page = httpx.get(f"{web_server}/subscribe/embed", params=params).text
    return html.unescape(re.search(r'<pre id="snippet"><code>(.*?)</code></pre>', page, re.S).group(1))


def _status(mailer_env, address: str) -> str | None:
    """The stored status, waiting a little for it: the row is written after the answer."""
    path = mailer_env["MAILER_DATABASE_URL"].removeprefix("sqlite:///")
    for _ in range(100):
        with sqlite3.connect(path) as connection:
            row = connection.execute("SELECT status FROM subscriber WHERE email = ?",
                                     (address,)).fetchone()
        if row:
            return row[0]
        threading.Event().wait(0.05)
    return None


@pytest.mark.browser
@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.parametrize("with_return", [True, False])
def test_the_snippet_posted_from_another_origin_lands_right(page, web_server_factory, other_site,
                                                            mailer_env, with_return):
    web_server = web_server_factory({"MAILER_ALLOWED_RETURN_URLS": f"{other_site.url}/welcome"})
    other_site.newsletter = web_server
    params = {"return": f"{other_site.url}/welcome"} if with_return else {}
    other_site.page = ("<!doctype html><html lang='en'><title>TWiR</title><h1>This Week in Rust</h1>"
                       + _snippet_from(web_server, **params))
    page.goto(other_site.url + "/")
    address = f"crab-{int(with_return)}@example.org"
    page.get_by_label("Your e-mail address").fill(address)
    page.get_by_role("button", name="Subscribe").click()
    if with_return:
        page.wait_for_url(f"{other_site.url}/welcome")
        assert page.get_by_role("heading").inner_text() == "Welcome back"
    else:
        page.wait_for_url(f"{web_server}/subscribe/thanks")
        assert page.get_by_role("heading").inner_text() == "Check your inbox"
    assert _status(mailer_env, address) == "pending"
