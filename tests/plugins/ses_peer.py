"""pytest plugin: local SES v2 endpoints as real peer processes, and fake AWS credentials.

Fixtures (names are stable; other engineers' tests use them):

``aws_credentials``
    Fake AWS credentials in the environment (AWS_ACCESS_KEY_ID=testing, ...,
    AWS_DEFAULT_REGION=us-east-1), with ~/.aws and the instance-metadata lookup switched off so
    nothing on this machine leaks in. Returns the variables it set (for subprocess ``env``).

``moto_ses``
    ``moto_server`` (from ``moto[server]``) started once per session on a free port, reset before
    each test. The handle has ``.endpoint_url``, ``.region``, ``.env`` (AWS_* plus
    MAILER_TRANSPORT=ses, MAILER_SES_ENDPOINT_URL, MAILER_SES_REGION, MAILER_ISSUES_DIR naming
    the examples and an https MAILER_BASE_URL, for a subprocess or ``monkeypatch.setenv``), ``.client()`` (a boto3 sesv2 client on it),
    ``.verify_identity(address_or_domain)`` (moto refuses to send from an unknown identity),
    ``.sent_messages()`` (list of ``{"id", "source", "destinations", "raw_data"}`` for every Raw
    send, raw_data being the MIME text verbatim), ``.sent_mime()`` (the same parsed with
    ``email.policy.default``) and ``.reset()``. moto has no GetAccount: preflight's quota is None.

``fake_ses``
    ``python -m tests.peers.fake_ses`` (see that module) started once per session, reset before
    each test: an SES v2 endpoint with injectable latency, rate cap (429), 5xx, daily quota,
    sending paused, per-recipient rejections. The handle has ``.endpoint_url``, ``.env``,
    ``.client()``, ``.control(**options)`` (change faults at run time), ``.stats()``,
    ``.messages()`` (with ``control(keep=True)``) and ``.reset()``. Its ``.env`` sets
    MAILER_SES_BULK=off (one SendEmail per reader); tests of SendBulkEmail set ``auto``.

``start_fake_ses(*args)`` starts another private instance (a context manager yielding the
same handle) for a test or a benchmark that needs its own start options.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.processes import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_UNSET = ("AWS_PROFILE", "AWS_SECURITY_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
          "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


def _http(method: str, url: str, payload: dict | None = None, timeout: float = 10.0) -> bytes:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


class _SesEndpoint:
    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = REGION

    @property
    def env(self) -> dict[str, str]:
        # A real transport never sends the shipped sample issue by default: name its folder;
        # nor links to a plain-http MAILER_BASE_URL.
        return {**FAKE_CREDENTIALS, "MAILER_TRANSPORT": "ses",
                "MAILER_SES_ENDPOINT_URL": self.endpoint_url, "MAILER_SES_REGION": self.region,
                "MAILER_ISSUES_DIR": str(ROOT / "examples"),
                "MAILER_BASE_URL": "https://newsletter.example.org"}

    def client(self):
        import boto3

        return boto3.client(
            "sesv2", region_name=self.region, endpoint_url=self.endpoint_url,
            aws_access_key_id="testing", aws_secret_access_key="testing")


class MotoSes(_SesEndpoint):
    def verify_identity(self, identity: str) -> None:
        self.client().create_email_identity(EmailIdentity=identity)

    def sent_messages(self) -> list[dict]:
        data = json.loads(_http("GET", f"{self.endpoint_url}/moto-api/data.json"))
        return list(data.get("ses", {}).get("RawMessage", []))

    def sent_mime(self) -> list[email.message.EmailMessage]:
        return [email.message_from_string(m["raw_data"], policy=email.policy.default)
                for m in self.sent_messages()]

    def reset(self) -> None:
        _http("POST", f"{self.endpoint_url}/moto-api/reset", {})


class FakeSes(_SesEndpoint):
    pid: int | None = None  # of the fake_ses process (benchmarks read its CPU time)

    @property
    def env(self) -> dict[str, str]:
        # One SendEmail per reader for the tests written for it (they count requests, kill at
        # the n-th, share a campaign among workers); tests/test_send_bulk.py sets
        # MAILER_SES_BULK=auto, the default outside the tests.
        return {**super().env, "MAILER_SES_BULK": "off"}

    def control(self, **options: object) -> dict:
        return json.loads(_http("POST", f"{self.endpoint_url}/_control", options))

    def stats(self) -> dict:
        return json.loads(_http("GET", f"{self.endpoint_url}/_stats"))

    def messages(self) -> list[dict]:
        return json.loads(_http("GET", f"{self.endpoint_url}/_messages"))["messages"]

    def reset(self) -> None:
        _http("POST", f"{self.endpoint_url}/_reset", {})


def _wait_until_answering(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            _http("GET", url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers, even if not 200
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within 30 s")


@contextlib.contextmanager
def start_moto_server() -> Iterator[MotoSes]:
    moto_server = Path(sys.executable).with_name("moto_server")
    if not moto_server.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **FAKE_CREDENTIALS})
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_answering(f"{url}/moto-api/data.json", process, "moto_server")
        yield MotoSes(url)
    finally:
        stop_process(process)


@contextlib.contextmanager
def start_fake_ses(*args: str) -> Iterator[FakeSes]:
    """Run tests/peers/fake_ses.py with these command-line options; yields its handle."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.peers.fake_ses", "--port", "0", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if "listening on " not in line:
            raise RuntimeError(f"fake_ses did not start (said {line!r})")
        url = line.rsplit(" ", 1)[1].strip()
        _wait_until_answering(f"{url}/_stats", process, "fake_ses")
        handle = FakeSes(url)
        handle.pid = process.pid
        yield handle
    finally:
        stop_process(process)
        if process.stdout:
            process.stdout.close()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return dict(FAKE_CREDENTIALS)


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[MotoSes]:
    with start_moto_server() as server:
        yield server


@pytest.fixture
def moto_ses(_moto_server: MotoSes, aws_credentials: dict[str, str]) -> MotoSes:
    _moto_server.reset()
    return _moto_server


@pytest.fixture(scope="session")
def _fake_ses_server() -> Iterator[FakeSes]:
    with start_fake_ses() as server:
        yield server


@pytest.fixture
def fake_ses(_fake_ses_server: FakeSes, aws_credentials: dict[str, str]) -> FakeSes:
    _fake_ses_server.reset()
    return _fake_ses_server
