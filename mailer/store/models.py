"""sqlmodel tables. Every schema change also needs an alembic revision in ``migrations/``.

Times are aware UTC datetimes (``mailer.domain.utcnow``); sqlmodel refuses naive ones and reads
every timestamp back in UTC on SQLite and PostgreSQL alike. Enum columns are plain strings so a
new state never needs a PostgreSQL ``ALTER TYPE``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, CursorResult, Index, Result, String, Table, Text, UniqueConstraint, text
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Field, SQLModel

from mailer.domain import CampaignStatus, DeliveryStatus, SubscriberStatus, utcnow
from mailer.errors import StoreError


def stored_id(value: int | None) -> int:
    """A row's id as read from the database: always set (the models type ``id`` as optional
    only for a row not saved yet), so a missing one is a bug, never an id None passed on."""
    if value is None:
        raise StoreError("a row read from the database has no id")
    return value


def rows_changed(result: Result) -> int:
    """How many rows an UPDATE or DELETE run through a session changed: the session answers
    it with a ``CursorResult``, typed only as the ``Result`` a SELECT gives."""
    if not isinstance(result, CursorResult):
        raise TypeError("rows_changed takes the result of an UPDATE or a DELETE")
    return result.rowcount


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core ``Table``, for bulk and dialect statements: sqlmodel sets
    ``__table__`` on every table model but declares it nowhere the type checker sees."""
    table = sa_inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


class Subscriber(SQLModel, table=True):
    __tablename__ = "subscriber"
    # Unsubscribe links name a subscriber by id and never expire: ids must never be reused.
    # One row per address whatever the case of its local part (migration 0002).
    __table_args__ = (
        Index("ux_subscriber_email_lower", text("lower(email)"), unique=True),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)  # normalised
    status: SubscriberStatus = Field(default=SubscriberStatus.PENDING, sa_type=String(16), index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    confirmed_at: datetime | None = None
    # Single-use confirm tokens: the token carries this nonce; confirming clears it, and a new
    # subscribe request replaces it, so old links stop working.
    confirm_nonce: str | None = Field(default=None, max_length=64)
    confirm_sent_at: datetime | None = None  # rate limit on confirmation mails per address
    source: str | None = Field(default=None, max_length=64)  # web / cli / import
    # consent record: where the sign-up and the confirmation came from
    signup_ip: str | None = Field(default=None, max_length=64)
    confirm_ip: str | None = Field(default=None, max_length=64)
    attrs: str | None = Field(default=None, sa_column=Column(Text))  # JSON: extra import columns
    # The reader's own pause (issue 26): campaigns begun before this skip them. Migration 0012.
    paused_until: datetime | None = None
    # A change of address the reader asked for on their page, waiting for the link mailed to
    # the new address (issue 26); the newsletter keeps going to ``email`` until it is clicked.
    # Confirming clears the nonce (single use) and moves ``new_email`` into ``email``. 0013.
    new_email: str | None = Field(default=None, max_length=320)
    new_email_nonce: str | None = Field(default=None, max_length=64)
    new_email_requested_at: datetime | None = None


class SubscriberChange(SQLModel, table=True):
    """Every state change of a subscriber: the consent and suppression history."""

    __tablename__ = "subscriber_change"

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, index=True)
    from_status: SubscriberStatus | None = Field(default=None, sa_type=String(16))
    to_status: SubscriberStatus = Field(sa_type=String(16))
    source: str = Field(max_length=64)  # web, one-click, cli, import, ses-bounce, ses-complaint ...
    detail: str | None = Field(default=None, sa_column=Column(Text))  # JSON: ip, campaign, reason


class ForgottenAddress(SQLModel, table=True):
    """Erased subscribers: only a keyed hash remains, so an import never brings them back."""

    __tablename__ = "forgotten_address"

    address_hash: str = Field(primary_key=True, max_length=128)
    forgotten_at: datetime = Field(default_factory=utcnow)


class StoreSecret(SQLModel, table=True):
    """Random values a database keeps for itself, made on first use. ``forget-pepper`` keys
    the forget hashes, so they outlive a rotation of MAILER_SECRET_KEY."""

    __tablename__ = "store_secret"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=256)
    created_at: datetime = Field(default_factory=utcnow)


class Campaign(SQLModel, table=True):
    """One send of one issue. A finished issue is sent again only as a new campaign."""

    __tablename__ = "campaign"

    id: int | None = Field(default=None, primary_key=True)
    issue_number: int = Field(index=True)
    subject: str = Field(max_length=500)
    status: CampaignStatus = Field(default=CampaignStatus.SENDING, sa_type=String(16))
    transport: str = Field(max_length=16)
    content_sha256: str = Field(max_length=64)  # of the rendered HTML, to spot edits mid-send
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    note: str | None = Field(default=None, sa_column=Column(Text))  # why it stopped
    # The reputation breaker (issue 11): why and when it paused the send, and the figures then.
    # Plain columns so /admin and `mailer stats` read them without parsing anything.
    pause_reason: str | None = Field(default=None, sa_column=Column(Text))
    paused_at: datetime | None = None
    breaker_sent: int | None = None
    breaker_delivered: int | None = None
    breaker_hard_bounces: int | None = None
    breaker_complaints: int | None = None
    # The canary (issue 11 §3): how many readers it went to, and until when its events are awaited.
    canary_size: int | None = None
    canary_until: datetime | None = None


class Delivery(SQLModel, table=True):
    """The ledger: one row per recipient of a campaign. Never a cursor."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id", name="uq_delivery_campaign_subscriber"),
        Index("ix_delivery_campaign_status", "campaign_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id")
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    email: str = Field(max_length=320)  # the address it went to, kept for the record
    status: DeliveryStatus = Field(default=DeliveryStatus.QUEUED, sa_type=String(16))
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_at: datetime | None = None
    sent_at: datetime | None = None
    provider_message_id: str | None = Field(default=None, max_length=255, index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    # what SES said afterwards (events/apply)
    delivered_at: datetime | None = None
    bounce_type: str | None = Field(default=None, max_length=16)
    bounced_at: datetime | None = None
    complained_at: datetime | None = None
    canary: bool | None = None  # one of the campaign's canary sample (issue 11 §3)
    delayed_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None


class DeliveryEventRecord(SQLModel, table=True):
    """Every provider event received, normalised, with its raw payload."""

    __tablename__ = "delivery_event"

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(max_length=300, unique=True)  # dedup: SNS MessageId + recipient + kind
    kind: str = Field(max_length=32, index=True)
    recipient: str = Field(max_length=320, index=True)
    occurred_at: datetime = Field(index=True)
    received_at: datetime = Field(default_factory=utcnow)
    provider_message_id: str | None = Field(default=None, max_length=255, index=True)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id", index=True)
    bounce_type: str | None = Field(default=None, max_length=16)
    bounce_subtype: str | None = Field(default=None, max_length=64)
    diagnostic: str | None = Field(default=None, sa_column=Column(Text))
    raw: str = Field(sa_column=Column(Text, nullable=False))  # JSON


class SnsMessage(SQLModel, table=True):
    """SNS messages already handled, so a replay is acknowledged and ignored."""

    __tablename__ = "sns_message"

    message_id: str = Field(primary_key=True, max_length=128)
    message_type: str = Field(max_length=32)
    topic_arn: str = Field(max_length=256)
    received_at: datetime = Field(default_factory=utcnow)


class SendWorker(SQLModel, table=True):
    """Processes sending a campaign right now; they share the rate budget between them."""

    __tablename__ = "send_worker"

    id: str = Field(primary_key=True, max_length=128)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    heartbeat_at: datetime = Field(default_factory=utcnow)
    rate: float = 0.0


class SignupRequest(SQLModel, table=True):
    """One sign-up from the public form, written the same way whatever the address's state.

    The request path only adds this row (so known and new addresses cost the same, and a database
    that cannot be written is noticed while the reader waits); the subscriber row and the
    confirmation mail follow after the answer. The rows of the last hour are the counts behind
    the per-mailbox, per-domain and hourly limits. Migration 0004.
    """

    __tablename__ = "signup_request"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    state: str = Field(default="queued", max_length=16, index=True)  # queued, done, limited
    email: str | None = Field(default=None, max_length=320)  # cleared once handled
    ip: str | None = Field(default=None, max_length=64)
    mailbox_key: str = Field(max_length=64, index=True)  # keyed hash of the canonical mailbox
    domain: str = Field(max_length=255, index=True)


class IssuePreview(SQLModel, table=True):
    """The one preview of an issue mailed to the editors before its send. Not a campaign and
    not a delivery: stats never count it."""

    __tablename__ = "issue_preview"

    issue_number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    address: str = Field(max_length=320)
    status: str = Field(max_length=16)  # "sending" while in flight, then "sent"
    provider_message_id: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # The version the editors saw (hash of the rendered HTML, as Campaign.content_sha256): a
    # different one on a later run mails them a correction. Migration 0010.
    content_sha256: str | None = Field(default=None, max_length=64)
    planned_send_at: datetime | None = None  # the send moment the preview named


class IssueHold(SQLModel, table=True):
    """An issue an editor held from its preview: no `mailer send` sends it while this row is
    there; a release deletes it. Migration 0010."""

    __tablename__ = "issue_hold"

    issue_number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    held_by: str = Field(max_length=320)
    held_at: datetime = Field(default_factory=utcnow)


class IssueEvent(SQLModel, table=True):
    """One step of an issue's way to the readers, for its timeline on /admin/issues/N: found,
    preview, correction, held, released (with who). Migration 0010."""

    __tablename__ = "issue_event"

    id: int | None = Field(default=None, primary_key=True)
    issue_number: int = Field(index=True)
    at: datetime = Field(default_factory=utcnow)
    kind: str = Field(max_length=32)
    actor: str | None = Field(default=None, max_length=320)
    detail: str | None = Field(default=None, sa_column=Column(Text))


class IssueLink(SQLModel, table=True):
    """What ``/l/<issue>/<n>`` stands for: the link's URL, words and ``##`` section, recorded
    when a campaign with link counts starts. Migration 0011."""

    __tablename__ = "issue_link"

    issue_number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    n: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    url: str = Field(sa_type=Text)
    text: str = Field(sa_type=Text)
    section: str = Field(sa_type=Text)


class LinkClicks(SQLModel, table=True):
    """Clicks of one link within one UTC hour, people and machines apart: a click adds one to
    its row, never a row of its own; nothing about who clicked is kept. Migration 0011."""

    __tablename__ = "link_clicks"

    issue_number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    n: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    hour: datetime = Field(primary_key=True)  # truncated to the hour, UTC
    machine: bool = Field(primary_key=True)
    clicks: int = 0


# -- counters (issue 23 §1, migration 0013): the figures kept on write by database triggers ----
# Every write to delivery, subscriber_change, subscriber and campaign.started_at adjusts them
# in its own transaction; `mailer db recount` (store.counters) rebuilds them from the rows.


class CampaignCounts(SQLModel, table=True):
    """One campaign's figures, as ``stats.counted_campaign_stats`` counts them from the ledger."""

    __tablename__ = "campaign_counts"

    campaign_id: int = Field(foreign_key="campaign.id", primary_key=True,
                             sa_column_kwargs={"autoincrement": False})
    recipients: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    delivered: int = 0
    bounced: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    bounced_undetermined: int = 0
    complained: int = 0
    unsubscribed: int = 0


# -- a finished send's breakdowns (migration 0017), kept by reads.send_figures -------------------


class SendFigures(SQLModel, table=True):
    """The campaign's rows by status (``campaign_counts``) when its minutes and domains below
    were counted: they hold while the counters still show these numbers."""

    __tablename__ = "send_figures"

    campaign_id: int = Field(foreign_key="campaign.id", primary_key=True, ondelete="CASCADE",
                             sa_column_kwargs={"autoincrement": False})
    recipients: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    kept_at: datetime


class SendMinute(SQLModel, table=True):
    """Rows of one campaign sent in one minute (UTC, ``YYYY-MM-DDTHH:MM``)."""

    __tablename__ = "send_minutes"

    campaign_id: int = Field(foreign_key="campaign.id", primary_key=True, ondelete="CASCADE",
                             sa_column_kwargs={"autoincrement": False})
    minute: str = Field(primary_key=True, max_length=16)
    sent: int = 0


class SendDomain(SQLModel, table=True):
    """Rows of one campaign to one recipient domain, and how many of them were sent."""

    __tablename__ = "send_domains"

    campaign_id: int = Field(foreign_key="campaign.id", primary_key=True, ondelete="CASCADE",
                             sa_column_kwargs={"autoincrement": False})
    domain: str = Field(primary_key=True, max_length=320)
    recipients: int = 0
    sent: int = 0


class WeekFigures(SQLModel, table=True):
    """One closed ISO week of the list, as the overview shows it (but the list's size)."""

    __tablename__ = "week_figures"

    week: str = Field(primary_key=True, max_length=10)  # the Monday, YYYY-MM-DD
    new: int = 0
    confirmed: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0
    imported: int = 0
    net: int = 0
    signups: int = 0
    signups_confirmed: int = 0
    signups_pending: int = 0


class WeekFiguresMark(SQLModel, table=True):
    """The newest history and subscriber rows, how many sat just below them, and the erasures,
    when the kept weeks were last checked (one row, id 1)."""

    __tablename__ = "week_figures_mark"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    change_id: int = 0
    change_tail: int = 0
    subscriber_id: int = 0
    subscriber_tail: int = 0
    forgotten: int = 0


class SubscriberCounts(SQLModel, table=True):
    """How many subscribers are in one status."""

    __tablename__ = "subscriber_counts"

    status: str = Field(primary_key=True, max_length=16)
    n: int = 0


class WeekCounts(SQLModel, table=True):
    """One ISO week of the list (``subscriber_reads.WeekGrowth``): the Monday, YYYY-MM-DD."""

    __tablename__ = "week_counts"

    week: str = Field(primary_key=True, max_length=10)
    new: int = 0
    imported: int = 0
    confirmed: int = 0
    unsubscribed: int = 0
    suppressed: int = 0
