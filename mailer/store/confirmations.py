"""A confirm link clicked again: is its reader active because of that very link?

A second click on the link in the confirmation mail (or a reload of the confirmed page) should
show "you are subscribed" again, not an error. It may only when the link is genuine and still
within its age, the reader is active, and the reader's latest change is the confirmation this
link made (its nonce's fingerprint is in the consent record). A reader who unsubscribed since,
or is active again some other way, gets the old error: an old link reveals and revives nothing.
"""

from __future__ import annotations

import hmac
import json

from sqlalchemy import select
from sqlmodel import Session, col

from mailer.domain import SubscriberStatus
from mailer.store.models import Subscriber, SubscriberChange
# the fingerprint and source a confirmation records (kept where they are written)
from mailer.store.subscribers import CONFIRM_SOURCE, nonce_fingerprint
from mailer.tokens import read_confirm_token


def reader_confirmed_by(session: Session, token: str, *, secret: str,
                        max_age: int) -> Subscriber | None:
    """The reader this used link confirmed, while that confirmation still stands; else None.

    A forged or expired link raises, as it does for an unused one.
    """
    subscriber_id, nonce = read_confirm_token(secret, token, max_age)
    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None or subscriber.status != SubscriberStatus.ACTIVE:
        return None
    latest = _latest_change(session, subscriber_id)
    if latest is None or latest.source != CONFIRM_SOURCE or latest.to_status != SubscriberStatus.ACTIVE:
        return None
    recorded = str(_detail(latest).get("confirmation", ""))
    return subscriber if hmac.compare_digest(recorded, nonce_fingerprint(nonce)) else None


def _latest_change(session: Session, subscriber_id: int) -> SubscriberChange | None:
    return session.execute(
        select(SubscriberChange).where(col(SubscriberChange.subscriber_id) == subscriber_id)
        .order_by(col(SubscriberChange.at).desc(), col(SubscriberChange.id).desc()).limit(1)
    ).scalars().first()


def _detail(change: SubscriberChange) -> dict:
    try:
        detail = json.loads(change.detail or "{}")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}
