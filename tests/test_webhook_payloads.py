"""Signed SES payloads of the wrong shape (issue 19, item 10): the real samples with one field's
type changed, signed and posted, are answered 2xx or 4xx, never 5xx; good ones still apply."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mailer.domain import SubscriberStatus
from mailer.cli import app as cli
from tests.conftest import FIXTURES
from tests.event_support import about, envelope, event_count, statuses, twin
from tests.event_support import post, reader_status, ses_payload

SAMPLES = sorted(path.stem for path in (FIXTURES / "ses").glob("*.json")
                 if not path.stem.startswith("sns-envelope"))

# What an attacker with a signing key (or a confused producer) can put in place of any field.
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=8),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.none(), st.integers()), max_size=2),
)


def paths_of(document, prefix=()) -> list[tuple]:
    """Every place in a JSON document: dict keys and list indexes, nested."""
    found = []
    items = (document.items() if isinstance(document, dict)
             else enumerate(document) if isinstance(document, list) else ())
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths_of(value, (*prefix, key)))
    return found


def replaced(document, path: tuple, value):
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


@st.composite
def mutated_payloads(draw) -> dict:
    payload = ses_payload(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = paths_of(payload)
        if not places:
            break
        payload = replaced(payload, draw(st.sampled_from(places)), draw(ODD_VALUES))
    return payload


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payload=mutated_payloads())
def test_signed_payloads_of_any_shape_never_get_a_5xx(client, sns_signer, payload):
    reply = post(client, sns_signer.notification(payload))
    assert reply.status_code < 500, (reply.status_code, reply.text, payload)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(["Message", "Timestamp", "MessageId", "Subject", "TopicArn"]),
       value=ODD_VALUES.filter(lambda value: not isinstance(value, str | None)))
def test_signed_envelopes_with_non_string_fields_are_refused(client, sns_signer, field, value):
    envelope = sns_signer.notification(ses_payload(), subject="s")
    envelope = sns_signer.sign(dict(envelope, **{field: value}))
    reply = post(client, envelope)
    assert 400 <= reply.status_code < 500, reply.text


@pytest.mark.parametrize("mutation", [
    ("bounce", "bounceType", 5), ("bounce", "bouncedRecipients", "x"),
    ("bounce", "bouncedRecipients", 0, "emailAddress", None),
    ("bounce", "bouncedRecipients", 0, "diagnosticCode", {"a": 1}),
    ("bounce", "bounceSubType", ["NoEmail"]), ("mail", "timestamp", 1772615551),
    ("bounce", "timestamp", 1772615551), ("mail", []),
])
def test_the_issues_examples_are_4xx_and_a_good_bounce_still_applies(
        client, sns_signer, hook_settings, mutation):
    *path, value = mutation
    reply = post(client, sns_signer.notification(replaced(ses_payload(), tuple(path), value)))
    assert reply.status_code < 500, reply.text
    good = post(client, sns_signer.notification(ses_payload()))
    assert good.status_code == 200, good.text
    assert reader_status(hook_settings) is SubscriberStatus.BOUNCED


def test_the_samples_unmutated_all_apply(client, sns_signer):
    for name in SAMPLES:
        reply = post(client, sns_signer.notification(ses_payload(name)))
        assert reply.status_code == 200, (name, reply.text)


def test_replay_reports_each_bad_line_and_applies_the_rest(tmp_path, mailer_env, engine, readers):
    """Odd types that still name a recipient are read (the odd field ignored); the others are
    reported by line number, and every valid line after them still applies."""
    bounce = about(twin("event-bounce"), "bounce@example.net", "m-bounce")
    delivery = about(twin("notification-delivery"), "deliver@example.net", "m-deliver")
    lines = [
        replaced(bounce, ("bounce", "bouncedRecipients", 0, "diagnosticCode"), {"x": 1}),  # 1
        replaced(bounce, ("mail",), []),                                                   # 2
        replaced(delivery, ("delivery", "smtpResponse"), 250),                             # 3
        dict(envelope(bounce, "sns-odd"), Message={"not": "a string"}),                    # 4
        replaced(bounce, ("eventType",), 5),                                               # 5
        about(twin("event-complaint"), "complain@example.net", "m-complain"),              # 6
    ]
    saved = tmp_path / "events.jsonl"
    saved.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    result = CliRunner().invoke(cli, ["events", "replay", "--json", str(saved)])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert [problem.split(":")[0] for problem in summary["problems"]] == [
        "line 2", "line 4", "line 5"]
    assert summary["events"] == {"bounce": 1, "delivery": 1, "complaint": 1}
    assert statuses(engine) == {"bounce@example.net": "bounced",
                                "complain@example.net": "complained",
                                "deliver@example.net": "active"}
    assert event_count(engine) == 3


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payload=mutated_payloads(), enveloped=st.booleans())
def test_replayed_payloads_of_any_shape_apply_or_are_one_reported_problem(
        mailer_env, engine, payload, enveloped):
    """The replay and poll route (no signature): a bad notification is a MailerError the command
    reports for its line, never another exception that would stop the replay."""
    from mailer.config import get_settings
    from mailer.errors import MailerError, StoreError
    from mailer.events.apply import ingest_document

    document = envelope(payload, f"sns-{id(payload)}") if enveloped else payload
    try:
        ingest_document(engine, document, get_settings())
    except StoreError:
        raise
    except MailerError:
        pass
