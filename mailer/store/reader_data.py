"""Everything held about one reader, as the reader may download it (issue 26, right of access).

One function, :func:`reader_record`, so the export and its test agree on what "everything"
means: the subscriber row (address, status, consent: sign-up and confirmation times, their
source and networks, the import's extra columns), every status change with its source and
detail, the deliveries of the last 52 weeks with the issue each carried, the provider events
about those deliveries or that address in the same window, and sign-up requests still holding
the address. Internal fields (the confirm nonce, worker claims) are not personal data and are
left out; nothing about another reader is read.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from mailer.domain import utcnow
from mailer.store.models import (
    Campaign, Delivery, DeliveryEventRecord, SignupRequest, Subscriber, SubscriberChange,
)

WINDOW = timedelta(weeks=52)


def reader_record(session: Session, subscriber: Subscriber,
                  now: datetime | None = None) -> dict[str, Any]:
    """The reader's data as plain JSON values (times in ISO 8601, UTC)."""
    since = (now or utcnow()) - WINDOW
    deliveries = _deliveries(session, subscriber, since)
    return {
        "address": subscriber.email,
        "status": str(subscriber.status),
        "consent": {
            "subscribed_at": _time(subscriber.created_at),
            "source": subscriber.source,
            "signup_network": subscriber.signup_ip,
            "confirmed_at": _time(subscriber.confirmed_at),
            "confirm_network": subscriber.confirm_ip,
            "imported_columns": json.loads(subscriber.attrs) if subscriber.attrs else None,
        },
        # a change of address asked for on the reader's page, not confirmed yet
        "pending_address": subscriber.new_email if subscriber.new_email_nonce else None,
        "status_history": _history(session, subscriber),
        "deliveries_since": _time(since),
        "deliveries": deliveries,
        "events": _events(session, subscriber, [d["delivery"] for d in deliveries], since),
        "signup_requests": _signup_requests(session, subscriber),
    }


def _history(session: Session, subscriber: Subscriber) -> list[dict[str, Any]]:
    rows = session.execute(select(SubscriberChange)
                           .where(col(SubscriberChange.subscriber_id) == subscriber.id)
                           .order_by(col(SubscriberChange.at), col(SubscriberChange.id))).scalars()
    return [{"at": _time(row.at), "from": row.from_status and str(row.from_status),
             "to": str(row.to_status), "source": row.source,
             "detail": json.loads(row.detail) if row.detail else None} for row in rows]


def _deliveries(session: Session, subscriber: Subscriber, since: datetime) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Delivery, col(Campaign.issue_number), col(Campaign.subject))
        .join(Campaign, col(Campaign.id) == col(Delivery.campaign_id))
        .where(col(Delivery.subscriber_id) == subscriber.id)
        .where(or_(col(Campaign.created_at) >= since, col(Delivery.sent_at) >= since))
        .order_by(col(Delivery.id))).all()
    return [{"delivery": row.id, "issue": issue, "subject": subject, "address": row.email,
             "status": str(row.status), "sent_at": _time(row.sent_at),
             "delivered_at": _time(row.delivered_at), "bounce_type": row.bounce_type,
             "bounced_at": _time(row.bounced_at), "complained_at": _time(row.complained_at)}
            for row, issue, subject in rows]


def _events(session: Session, subscriber: Subscriber, delivery_ids: list[int],
            since: datetime) -> list[dict[str, Any]]:
    about = [func.lower(col(DeliveryEventRecord.recipient)) == subscriber.email.lower()]
    if delivery_ids:
        about.append(col(DeliveryEventRecord.delivery_id).in_(delivery_ids))
    rows = session.execute(select(DeliveryEventRecord)
                           .where(or_(*about), col(DeliveryEventRecord.occurred_at) >= since)
                           .order_by(col(DeliveryEventRecord.occurred_at),
                                     col(DeliveryEventRecord.id))).scalars()
    return [{"kind": row.kind, "occurred_at": _time(row.occurred_at), "delivery": row.delivery_id,
             "bounce_type": row.bounce_type, "bounce_subtype": row.bounce_subtype,
             "diagnostic": row.diagnostic} for row in rows]


def _signup_requests(session: Session, subscriber: Subscriber) -> list[dict[str, Any]]:
    rows = session.execute(select(SignupRequest)
                           .where(func.lower(col(SignupRequest.email)) == subscriber.email.lower())
                           .order_by(col(SignupRequest.at))).scalars()
    return [{"at": _time(row.at), "state": row.state, "network": row.ip} for row in rows]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
