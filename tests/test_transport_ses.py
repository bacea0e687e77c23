"""The SES transport against real local SES v2 endpoints: moto_server and tests/peers/fake_ses.

moto keeps Raw messages verbatim, so what a reader would get is read back and checked; fake_ses
answers like SES does when things go wrong, so every provider error is seen on its way through
botocore into mailer's error tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mailer.domain import OutgoingEmail
from mailer.errors import (
    AccountError,
    AnswerLost,
    QuotaExhausted,
    Rejected,
    TemporaryFailure,
    Throttled,
)
from mailer.transports import get_transport
from mailer.transports.ses import SesTransport, ses_tags

pytestmark = pytest.mark.peer

SENDER = "This Week in Rust <newsletter@example.org>"


def message(n: int = 1, **changes) -> OutgoingEmail:
    fields = dict(
        to=f"reader{n}@example.com",
        sender=SENDER,
        subject="This Week in Rust 644 — ✨",
        html=f'<p>Hello — <a href="https://twir.example.org/unsubscribe/tok{n}">unsubscribe</a></p>',
        text=f"Hello\n\nUnsubscribe: https://twir.example.org/unsubscribe/tok{n}\n",
        headers={
            "List-Unsubscribe": f"<https://twir.example.org/unsubscribe/tok{n}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "This Week in Rust <newsletter.this-week-in-rust.example.org>",
            "Feedback-ID": "644:7:newsletter:twir",
            "X-Mailer-Delivery": f"7-{n}",
        },
        tags={"campaign": "7", "delivery": str(n)},
    )
    fields.update(changes)
    return OutgoingEmail(**fields)


def transport_for(endpoint, **kwargs) -> SesTransport:
    return SesTransport(sender=SENDER, endpoint_url=endpoint.endpoint_url, **kwargs)


# -- moto_server: what goes out ----------------------------------------------------------------


def test_sent_message_reads_back_with_headers_bodies_and_links(moto_ses):
    moto_ses.verify_identity("example.org")
    transport = transport_for(moto_ses)
    provider_id = transport.send(message(3))

    (stored,) = moto_ses.sent_messages()
    assert stored["id"] == provider_id
    assert stored["source"] == "newsletter@example.org"
    assert "reader3@example.com" in stored["destinations"]
    (mail,) = moto_ses.sent_mime()
    assert mail["To"] == "reader3@example.com"
    assert mail["Subject"] == "This Week in Rust 644 — ✨"
    assert mail["List-Unsubscribe"] == "<https://twir.example.org/unsubscribe/tok3>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Id"] == "This Week in Rust <newsletter.this-week-in-rust.example.org>"
    assert mail["Feedback-ID"] == "644:7:newsletter:twir"
    assert mail["X-Mailer-Delivery"] == "7-3"
    assert "tok3" in mail.get_body(("html",)).get_content()
    assert "tok3" in mail.get_body(("plain",)).get_content()


def test_each_recipient_gets_their_own_links_from_many_threads(moto_ses):
    moto_ses.verify_identity("newsletter@example.org")
    transport = transport_for(moto_ses, max_connections=8)
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: transport.send(message(n)), range(24)))
    assert len(set(ids)) == 24
    by_recipient = {m["To"]: m for m in moto_ses.sent_mime()}
    assert len(by_recipient) == 24
    for n in range(24):
        mail = by_recipient[f"reader{n}@example.com"]
        assert mail["List-Unsubscribe"] == f"<https://twir.example.org/unsubscribe/tok{n}>"


def test_preflight_passes_with_a_verified_domain_and_unknown_quota(moto_ses):
    moto_ses.verify_identity("example.org")
    assert transport_for(moto_ses).preflight() is None  # moto has no GetAccount


def test_preflight_names_an_unverified_sender(moto_ses):
    with pytest.raises(AccountError, match="newsletter@example.org is not a verified SES "
                                           "identity in us-east-1"):
        transport_for(moto_ses).preflight()


def test_preflight_without_credentials_is_one_clear_line(moto_ses, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(AccountError, match="no AWS credentials found: set AWS_ACCESS_KEY_ID"):
        transport_for(moto_ses).preflight()


def test_a_missing_configuration_set_is_named_before_sending(moto_ses):
    moto_ses.verify_identity("example.org")
    transport = transport_for(moto_ses, configuration_set="twir-events")
    with pytest.raises(AccountError, match="'twir-events' .*does not exist"):
        transport.preflight()
    moto_ses.client().create_configuration_set(ConfigurationSetName="twir-events")
    assert transport.preflight() is None


def _ledger(engine) -> tuple:
    from sqlmodel import func, select

    from mailer.store.db import session
    from mailer.store.models import Campaign, Delivery

    with session(engine) as db:
        return tuple(db.exec(select(func.count()).select_from(model)).one()
                     for model in (Campaign, Delivery))


def test_cli_send_without_credentials_prints_one_line(moto_ses, mailer_env, engine, tmp_path):
    """The installed `mailer send`, with no AWS credentials anywhere: one line, nothing sent."""
    from tests.conftest import ROOT

    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(mailer_env)
    env.update({"MAILER_TRANSPORT": "ses", "MAILER_SES_ENDPOINT_URL": moto_ses.endpoint_url,
                "MAILER_ISSUES_DIR": str(ROOT / "examples"),
                "MAILER_BASE_URL": "https://newsletter.example.org",  # mail through ses: https
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)})
    mailer = str(Path(sys.executable).parent / "mailer")
    added = subprocess.run([mailer, "subscribers", "add", "reader@example.com", "--confirmed"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    before = _ledger(engine)
    result = subprocess.run([mailer, "send", "--issue", "644", "--yes"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(or AWS_PROFILE, or run with an instance role)"], result.stderr
    assert moto_ses.sent_messages() == []
    assert _ledger(engine) == before


def test_get_transport_builds_ses_from_settings(moto_ses, mailer_env, monkeypatch):
    from mailer.config import get_settings

    monkeypatch.setenv("MAILER_TRANSPORT", "ses")
    monkeypatch.setenv("MAILER_SES_ENDPOINT_URL", moto_ses.endpoint_url)
    get_settings.cache_clear()
    moto_ses.verify_identity("example.org")
    transport = get_transport(get_settings())
    assert transport.name == "ses"
    transport.preflight()
    transport.send(message(sender=get_settings().from_))
    assert len(moto_ses.sent_messages()) == 1


# -- fake_ses: quota and every error on its way through botocore ----------------------------


def test_preflight_returns_the_account_quota(fake_ses):
    fake_ses.control(rate=50, daily_quota=50_000, sent_last_24h=1_200)
    quota = transport_for(fake_ses).preflight()
    assert quota.max_send_rate == 50
    assert quota.max_24h == 50_000
    assert quota.remaining_24h == 48_800
    assert quota.sending_enabled


def test_preflight_refuses_a_paused_account(fake_ses):
    fake_ses.control(paused=True)
    with pytest.raises(AccountError, match="sending is paused"):
        transport_for(fake_ses).preflight()


def test_throttling_reaches_the_caller_without_retries(fake_ses):
    fake_ses.control(rate=1, burst=1)
    transport = transport_for(fake_ses)
    transport.send(message(1))
    with pytest.raises(Throttled, match="TooManyRequestsException: Maximum sending rate"):
        transport.send(message(2))
    stats = fake_ses.stats()
    assert stats["requests"] == 2  # botocore did not quietly try again
    assert stats["per_recipient"] == {"reader1@example.com": 1}


def test_server_errors_are_temporary(fake_ses):
    fake_ses.control(errors=1)
    transport = transport_for(fake_ses)
    with pytest.raises(TemporaryFailure, match="InternalFailure") as caught:
        transport.send(message(1))
    assert not isinstance(caught.value, Throttled)
    assert transport.send(message(1))  # the next try goes through
    assert fake_ses.stats()["accepted"] == 1


def test_a_rejected_recipient_fails_alone(fake_ses):
    fake_ses.control(reject=["reader2@*"])
    transport = transport_for(fake_ses)
    transport.send(message(1))
    with pytest.raises(Rejected, match="MessageRejected: Address rejected: reader2@example.com"):
        transport.send(message(2))
    transport.send(message(3))
    assert fake_ses.stats()["per_recipient"] == {"reader1@example.com": 1,
                                                 "reader3@example.com": 1}


def test_sending_paused_stops_everything(fake_ses):
    fake_ses.control(paused=True)
    with pytest.raises(AccountError, match="SendingPausedException"):
        transport_for(fake_ses).send(message())


def test_daily_quota_exhausted(fake_ses):
    fake_ses.control(daily_quota=2)
    transport = transport_for(fake_ses)
    transport.send(message(1))
    transport.send(message(2))
    with pytest.raises(QuotaExhausted, match="Daily message quota exceeded"):
        transport.send(message(3))


def test_an_unverified_sender_at_send_time_stops_everything(fake_ses):
    fake_ses.control(identities=["example.net"])
    with pytest.raises(AccountError, match="not verified"):
        transport_for(fake_ses).send(message())


def test_an_unreachable_endpoint_is_a_temporary_failure(aws_credentials):
    from tests.plugins.processes import free_port

    transport = SesTransport(sender=SENDER, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TemporaryFailure, match="cannot reach SES"):
        transport.send(message())


def test_tags_and_configuration_set_are_sent(fake_ses):
    fake_ses.control(keep=True, configuration_sets=["twir-events"])
    transport = transport_for(fake_ses, configuration_set="twir-events")
    transport.send(message(5, tags={"campaign": "7", "delivery": "5", "issue": "644 (draft)"}))
    (kept,) = fake_ses.messages()
    assert kept["configuration_set"] == "twir-events"
    assert {t["Name"]: t["Value"] for t in kept["tags"]} == {
        "campaign": "7", "delivery": "5", "issue": "644__draft_"}


def test_tag_values_keep_only_characters_ses_allows():
    assert ses_tags({"campaign id": "a.b@c", "empty": ""}) == [
        {"Name": "campaign_id", "Value": "a_b_c"}]


# -- issue 14: what the sender knows when no answer comes back ---------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_an_answer_lost_after_the_request_is_never_retried(fake_ses, how):
    fake_ses.control(lose_answers=1, lose_how=how)
    transport = transport_for(fake_ses)
    with pytest.raises(AnswerLost, match="may or may not have been accepted"):
        transport.send(message(1))
    stats = fake_ses.stats()
    # SES took it, and botocore did not quietly send it a second time.
    assert stats["requests"] == 1 and stats["per_recipient"] == {"reader1@example.com": 1}
    transport.send(message(2))  # the next message goes out normally
    assert fake_ses.stats()["accepted"] == 2


def test_a_read_timeout_is_an_answer_lost_not_a_temporary_failure(fake_ses):
    fake_ses.control(latency=1.5)
    transport = transport_for(fake_ses, read_timeout=0.5)
    with pytest.raises(AnswerLost, match="ReadTimeoutError"):
        transport.send(message(1))
    assert fake_ses.stats()["requests"] == 1


def test_a_refused_connection_is_safe_to_retry(aws_credentials):
    from tests.plugins.processes import free_port

    transport = SesTransport(sender=SENDER, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TemporaryFailure) as raised:
        transport.send(message())
    assert not isinstance(raised.value, AnswerLost)


def test_a_connect_timeout_is_safe_to_retry():
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    from mailer.transports.ses import connection_error

    assert type(connection_error(ConnectTimeoutError(endpoint_url="https://x"))) is \
        TemporaryFailure
    assert type(connection_error(ReadTimeoutError(endpoint_url="https://x"))) is AnswerLost
