"""A fake AT Protocol PDS for the atproto source's tests: ``com.atproto.repo.listRecords`` over
a folder of records, newest first (descending record key), paged with a cursor, as a PDS does.

    python -m tests.peers.fake_pds --did did:plc:... --records DIR --port 8124 --log requests.log

``DIR/<collection>/<rkey>.json`` holds each record's value. Each log line:
``PATH?QUERY STATUS USER-AGENT``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_LOG_LOCK = threading.Lock()


def list_records(records: Path, did: str, query: dict[str, list[str]], page_size: int = 100) -> tuple[int, dict]:
    if query.get("repo", [""])[0] != did:
        return 400, {"error": "InvalidRequest", "message": "Could not find repo"}
    collection = query.get("collection", [""])[0]
    # A PDS may answer with fewer records than asked for; --page-size makes this one do so.
    limit = max(1, min(100, page_size, int(query.get("limit", ["50"])[0])))
    cursor = query.get("cursor", [None])[0]
    folder = records / collection
    keys = sorted((p.stem for p in folder.glob("*.json")), reverse=True) if folder.is_dir() else []
    if cursor:
        keys = [k for k in keys if k < cursor]
    page = keys[:limit]
    answer = {"records": []}
    for key in page:
        value = json.loads((folder / f"{key}.json").read_text())
        cid = "bafy" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:40]
        answer["records"].append({"uri": f"at://{did}/{collection}/{key}", "cid": cid, "value": value})
    if len(keys) > limit:
        answer["cursor"] = page[-1]
    return 200, answer


def make_handler(records: Path, did: str, log: Path, page_size: int):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/xrpc/com.atproto.repo.listRecords":
                status, answer = list_records(records, did, parse_qs(parts.query), page_size)
            else:
                status, answer = 404, {"error": "MethodNotImplemented"}
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            with _LOG_LOCK, log.open("a") as handle:  # before the answer leaves, so a client that has it finds the line
                handle.write(f"{self.path} {status} {self.headers.get('User-Agent', '-')}\n")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--did", required=True)
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    handler = make_handler(args.records, args.did, args.log, args.page_size)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
