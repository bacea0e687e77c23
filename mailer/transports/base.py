"""The transport interface: the messenger the dispatcher depends on (listmonk's shape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from mailer.domain import OutgoingEmail, SendQuota
from mailer.errors import TransportError


@runtime_checkable
class Transport(Protocol):
    name: str

    def preflight(self) -> SendQuota | None:
        """Check credentials and sender before a send; raise AccountError / ConfigError with one
        clear line when the send cannot work. Returns the provider's quota when it has one."""

    def send(self, message: OutgoingEmail) -> str:
        """Hand one message over and return the provider's message id.

        Raises Throttled / TemporaryFailure (retry: nothing was accepted), AnswerLost (the
        request went out, the answer did not come back: maybe sent, never retry), Rejected
        (this recipient only) or AccountError (stop everything). Must be safe to call from several threads at once."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class BatchTransport(Transport, Protocol):
    """A transport that can also hand many readers' messages over in one call (SES
    SendBulkEmail). The dispatcher uses :meth:`send_batch` while :attr:`can_batch` is true."""

    can_batch: bool  # false once the account or endpoint turned out to have no batch call
    batch_notice: str | None  # why it stopped batching, once, for the operator
    max_batch: int  # messages per call at most

    def send_batch(self, messages: Sequence[OutgoingEmail]) -> list[str | TransportError]:
        """Hand ``messages`` over; one result per message, in order: the provider's message id
        or the error for that message alone (Rejected, TemporaryFailure, Throttled,
        AccountError, AnswerLost). Raises, as :meth:`send` does, when the whole call failed
        (an AnswerLost then means any of them may have been sent). Messages without a
        template, and every message once batching turned out to be missing, go one by one."""
