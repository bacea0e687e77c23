"""The one suppression policy (mailer.suppression), as each kind of source meets it."""

import pytest

from mailer.domain import SubscriberStatus as S
from mailer.suppression import MAILCHIMP, SES_BOUNCE, SES_COMPLAINT, SES_SUBSCRIPTION, may_change

EVERY = list(S)


@pytest.mark.parametrize("to", EVERY)
def test_a_complaint_yields_only_to_an_operator(to):
    for source in ("web", "one-click", "import", SES_BOUNCE, SES_SUBSCRIPTION, MAILCHIMP):
        assert not may_change(S.COMPLAINED, to, source=source)
    assert may_change(S.COMPLAINED, to, source="admin") is (to is not S.COMPLAINED)


def test_a_bounced_reader_is_not_revived_by_their_own_links_but_may_unsubscribe():
    assert not may_change(S.BOUNCED, S.PENDING, source="web")
    assert not may_change(S.BOUNCED, S.ACTIVE, source="web-confirm")
    assert may_change(S.BOUNCED, S.UNSUBSCRIBED, source="web")
    assert may_change(S.BOUNCED, S.ACTIVE, source="cli")


def test_provider_evidence_only_tightens():
    assert may_change(S.ACTIVE, S.UNSUBSCRIBED, source=SES_SUBSCRIPTION)
    assert not may_change(S.BOUNCED, S.UNSUBSCRIBED, source=SES_SUBSCRIPTION)
    assert may_change(S.UNSUBSCRIBED, S.BOUNCED, source=SES_BOUNCE)
    assert may_change(S.BOUNCED, S.COMPLAINED, source=SES_COMPLAINT)
    assert not may_change(S.BOUNCED, S.BOUNCED, source=SES_BOUNCE)


def test_mailchimp_settles_a_pending_address_and_otherwise_only_tightens():
    assert may_change(S.PENDING, S.ACTIVE, source=MAILCHIMP)
    assert may_change(S.PENDING, S.UNSUBSCRIBED, source=MAILCHIMP)
    assert not may_change(S.UNSUBSCRIBED, S.ACTIVE, source=MAILCHIMP)
    assert may_change(S.ACTIVE, S.BOUNCED, source=MAILCHIMP)
