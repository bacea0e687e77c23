"""A small web site for the feed source's tests: serves a folder, with ETag and Last-Modified
validators (answering 304 to a matching conditional request), and logs every request.

    python -m tests.peers.issue_site --root DIR --port 8123 --log requests.log

Each log line: ``METHOD PATH STATUS USER-AGENT``. Files are read on each request, so a test can
add an issue while the site runs. ``/status/N`` answers with status N (and ``Retry-After: 0``),
for the retry tests. For the limits tests (issue 19):

* ``/redirect?to=URL&hops=N`` redirects N times within the site, then to URL;
* ``/trickle?bytes=N&every=S`` promises N bytes and sends one every S seconds;
* ``/trickle-headers?every=S`` sends its status line, then a header byte every S seconds;
* ``/huge?mb=N`` streams N MiB without a Content-Length.
"""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

_LOG_LOCK = threading.Lock()


def make_handler(root: Path, log: Path):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path.startswith("/status/") and path[8:].isdigit():
                return self._answer(int(path[8:]), b"status on request", "text/plain")
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if path in ("/redirect", "/trickle", "/trickle-headers", "/huge"):
                return getattr(self, "_" + path[1:].replace("-", "_"))(query)
            target = (root / path.lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            if root.resolve() not in target.parents or not target.is_file():
                return self._answer(404, b"not found", "text/plain")
            body = target.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                return self._answer(304, b"", None, etag)
            return self._answer(200, body, mimetypes.guess_type(target.name)[0] or "application/octet-stream", etag)

        def _redirect(self, query: dict[str, str]) -> None:
            hops = int(query.get("hops", "0"))
            target = query["to"] if hops <= 0 else "/redirect?" + urlencode({"to": query["to"], "hops": hops - 1})
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self._log(302)  # before the answer leaves: a client that has it must find the line
            self.end_headers()

        def _trickle(self, query: dict[str, str]) -> None:
            size, every = int(query.get("bytes", "60")), float(query.get("every", "0.25"))
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self._log(200)
            self._drip(b"x" * size, every)

        def _trickle_headers(self, query: dict[str, str]) -> None:
            every = float(query.get("every", "0.25"))
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            self._log(200)
            self._drip(b"X-Slow: " + b"x" * int(query.get("bytes", "60")) + b"\r\n\r\n", every)

        def _drip(self, data: bytes, every: float) -> None:
            try:
                for index in range(len(data)):
                    self.wfile.write(data[index:index + 1])
                    self.wfile.flush()
                    time.sleep(every)
            except OSError:
                pass  # the client gave up: what the test wanted
            self.close_connection = True

        def _huge(self, query: dict[str, str]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Connection", "close")
            self.end_headers()
            self._log(200)
            block = b"<p>" + b"x" * (1024 * 1024 - 3)
            try:
                for _ in range(int(query.get("mb", "100"))):
                    self.wfile.write(block)
            except OSError:
                pass
            self.close_connection = True

        def _log(self, status: int) -> None:
            with _LOG_LOCK, log.open("a") as handle:
                handle.write(f"GET {self.path} {status} {self.headers.get('User-Agent', '-')}\n")

        def _answer(self, status: int, body: bytes, content_type: str | None, etag: str | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if status >= 500 or status == 429:
                self.send_header("Retry-After", "0")
            if etag:
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", formatdate(usegmt=True))
            self.send_header("Content-Length", str(len(body)))
            self._log(status)  # before the answer leaves: a client that has it must find the line
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, *args) -> None:  # quiet: the log file is the record
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.root, args.log))
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
