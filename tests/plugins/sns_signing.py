"""pytest plugin: SNS envelopes signed with a key and certificate the tests generate.

``sns_signer`` builds SNS HTTP bodies (Notification, SubscriptionConfirmation,
UnsubscribeConfirmation) signed with SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA), and
its ``fetcher`` hands the generated certificate to the verifier in place of the https fetch from
sns.<region>.amazonaws.com. Production checks stay as they are: the fetcher is injected
(``app.state.sns_cert_fetcher``), never switched on by a setting.

``serve_app(app)`` runs a FastAPI app under a real uvicorn server in a thread, on a free port.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.plugins.processes import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOPIC_ARN = "arn:aws:sns:eu-west-1:210987654321:twir-ses-events"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-tests0000.pem"

NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                       "Type")


def generate_key_and_certificate(common_name: str = "sns.amazonaws.com"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def canonical_string(fields: dict) -> bytes:
    names = NOTIFICATION_FIELDS if fields["Type"] == "Notification" else CONFIRMATION_FIELDS
    return "".join(
        f"{name}\n{fields[name]}\n" for name in names if fields.get(name) is not None
    ).encode()


class SnsSigner:
    """Builds and signs SNS envelopes; counts the certificate fetches it served."""

    def __init__(self) -> None:
        self.key, self.certificate_pem = generate_key_and_certificate()
        self.fetched: list[str] = []

    def fetcher(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.certificate_pem

    def signature(self, fields: dict, version: int | str = 2) -> str:
        algorithm = hashes.SHA1() if str(version) == "1" else hashes.SHA256()
        raw = self.key.sign(canonical_string(fields), padding.PKCS1v15(), algorithm)
        return base64.b64encode(raw).decode()

    def sign(self, fields: dict, version: int | str = 2) -> dict:
        signed = dict(fields, SignatureVersion=str(version))
        signed["Signature"] = self.signature(signed, version)
        return signed

    def notification(self, message: dict | str, *, version: int | str = 2,
                     topic_arn: str = TOPIC_ARN, subject: str | None = None,
                     message_id: str | None = None, cert_url: str = CERT_URL) -> dict:
        fields = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "SigningCertURL": cert_url,
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"
                              f"&SubscriptionArn={topic_arn}:tests",
        }
        if subject is not None:
            fields["Subject"] = subject
        return self.sign(fields, version)

    def confirmation(self, kind: str = "SubscriptionConfirmation", *, version: int | str = 2,
                     topic_arn: str = TOPIC_ARN, subscribe_url: str | None = None,
                     cert_url: str = CERT_URL) -> dict:
        token = uuid.uuid4().hex
        fields = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": f"You have chosen to subscribe to the topic {topic_arn}.",
            "SubscribeURL": subscribe_url or (
                "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
                f"&TopicArn={topic_arn}&Token={token}"
            ),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "SigningCertURL": cert_url,
        }
        return self.sign(fields, version)


@pytest.fixture(scope="session")
def sns_signer() -> SnsSigner:
    return SnsSigner()


@pytest.fixture
def sns_topic_arn() -> str:
    return TOPIC_ARN


@contextlib.contextmanager
def serve_app(app, *, timeout: float = 15.0) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread of this process; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
