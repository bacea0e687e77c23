"""The transport interface: the messenger the dispatcher depends on (listmonk's shape)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mailer.domain import OutgoingEmail, SendQuota


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
