"""A small web site for the feed source's tests: serves a folder, with ETag and Last-Modified
validators (answering 304 to a matching conditional request), and logs every request.

    python -m tests.peers.issue_site --root DIR --port 8123 --log requests.log

Each log line: ``METHOD PATH STATUS USER-AGENT``. Files are read on each request, so a test can
add an issue while the site runs. ``/status/N`` answers with status N (and ``Retry-After: 0``),
for the retry tests.
"""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_LOG_LOCK = threading.Lock()


def make_handler(root: Path, log: Path):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path.startswith("/status/") and path[8:].isdigit():
                return self._answer(int(path[8:]), b"status on request", "text/plain")
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
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
            with _LOG_LOCK, log.open("a") as handle:
                handle.write(f"GET {self.path} {status} {self.headers.get('User-Agent', '-')}\n")

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
