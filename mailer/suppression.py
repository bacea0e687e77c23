"""The one suppression policy: who may move a subscriber from one status to another.

Every status change asks :func:`may_change` through :func:`mailer.subscription_states.allows`,
which first finds the move in the workflow's table (what each event does; this module says
who may). Pure: it knows statuses and the source of a change, nothing else.

Who asks decides the rule:

- an operator (``cli``, ``operator``, ``admin``) may make any change, lifting a suppression too;
- the provider's evidence (SES bounces, complaints, list unsubscribes) only ever tightens;
- the Mailchimp migration settles a pending address either way, otherwise only tightens;
- anyone else (the reader's own links, the sign-up form, a CSV import) cannot lift a suppression:
  a complained address stays complained, a bounced one is not made pending or active again.
"""

from __future__ import annotations

from mailer.domain import SubscriberStatus

# Sources that stand for a person at the console: only they may lift a suppression.
OPERATOR_SOURCES = frozenset({"cli", "operator", "admin"})

# Sources of provider evidence, written on the consent record by events/apply.
SES_BOUNCE = "ses-bounce"
SES_COMPLAINT = "ses-complaint"
SES_SUBSCRIPTION = "ses-subscription"
EVIDENCE_SOURCES = frozenset({SES_BOUNCE, SES_COMPLAINT, SES_SUBSCRIPTION})

# The Mailchimp import: a decision the reader made before the move.
MAILCHIMP = "mailchimp"

# How far a status keeps mail away. Tightening moves up this scale.
STRICTNESS = {SubscriberStatus.ACTIVE: 0, SubscriberStatus.PENDING: 0,
              SubscriberStatus.UNSUBSCRIBED: 1, SubscriberStatus.BOUNCED: 2,
              SubscriberStatus.COMPLAINED: 3}


def tightens(current: SubscriberStatus | str, to: SubscriberStatus | str) -> bool:
    """True when ``to`` keeps mail further away than ``current``: a complaint outranks a bounce,
    a bounce an unsubscribe, and nothing outranks a complaint."""
    return STRICTNESS[SubscriberStatus(to)] > STRICTNESS[SubscriberStatus(current)]


def may_change(current: SubscriberStatus | str, to: SubscriberStatus | str, *,
               source: str) -> bool:
    """Whether a change from ``current`` to ``to`` asked for by ``source`` may happen (a change
    to the same status never does)."""
    current, to = SubscriberStatus(current), SubscriberStatus(to)
    if current is to:
        return False
    if source in OPERATOR_SOURCES:
        return True
    if source in EVIDENCE_SOURCES:
        return tightens(current, to)
    if source == MAILCHIMP:
        # pending is no decision yet: Mailchimp's confirmed consent or refusal settles it
        return current is SubscriberStatus.PENDING or tightens(current, to)
    return _reader_may_change(current, to)


def _reader_may_change(current: SubscriberStatus, to: SubscriberStatus) -> bool:
    """Nobody but an operator lifts a suppression."""
    if current is SubscriberStatus.COMPLAINED:
        return False
    if current is SubscriberStatus.BOUNCED and to in (SubscriberStatus.ACTIVE,
                                                      SubscriberStatus.PENDING):
        return False
    return True
