"""The ledger as the dispatcher sees it: one worker's hold on one campaign (issue 22 §1).

The dispatcher depends on this interface, not on a database: ``mailer.store.ledger_lease``
implements it on the ledger, and a test can implement it in memory. It is the dispatcher's own
vocabulary (claim a batch, mark a row, beat, pause), one method per ledger write or read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mailer.domain import DeliveryStatus, Reputation
    from mailer.store.ledger import ClaimedDelivery, Recovery
    from mailer.store.models import Campaign


@runtime_checkable
class Lease(Protocol):
    worker_id: str
    campaign_id: int

    # -- this worker among its peers -------------------------------------------------------
    def join(self, rate: float) -> None:
        """Register this worker on the campaign at ``rate``."""

    def beat(self, rate: float) -> int:
        """Say this worker is alive at ``rate``; the number of live workers sharing the send."""

    def recover_abandoned(self) -> Recovery:
        """Give back the rows of peers that died."""

    def live_peers(self) -> int:
        """Workers still sending this campaign."""

    def leave(self) -> None:
        """This worker is done with the campaign."""

    # -- rows ------------------------------------------------------------------------------
    def claim(self, limit: int, *, canary_only: bool = False) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` queued rows (of the canary sample only, if asked)."""

    def start_sending(self, row: ClaimedDelivery) -> DeliveryStatus | None:
        """SENDING when the row is this worker's to send now; SKIPPED when its reader left
        meanwhile; None when the lease on it was lost."""

    def sent(self, row: ClaimedDelivery, provider_message_id: str) -> bool: ...

    # Optional, for many readers per provider call: ``start_sending_batch(rows)`` and
    # ``sent_batch([(row, provider id)])``, the same writes for each row in one transaction.
    # A lease without them is written one row at a time.

    def failed(self, row: ClaimedDelivery, reason: str) -> bool: ...

    def failed_held(self, row: ClaimedDelivery, reason: str) -> bool:
        """Fail a row given back to the queue (still ours) while its verdict was awaited."""

    def retry(self, row: ClaimedDelivery, reason: str) -> bool:
        """Back to the queue (still ours), to be tried again."""

    def unknown(self, row: ClaimedDelivery, reason: str) -> bool:
        """Its answer was lost: maybe sent, never retried here."""

    # -- the campaign ----------------------------------------------------------------------
    def campaign(self) -> Campaign | None: ...

    def reputation(self) -> Reputation:
        """The campaign's figures the breaker watches."""

    def baseline(self) -> Reputation | None:
        """The figures an operator reviewed before resuming a paused campaign, if any."""

    def pause(self, reason: str, figures: Reputation) -> bool: ...

    def counts(self) -> dict[DeliveryStatus, int]:
        """Rows of the campaign by status."""

    def finish_if_done(self) -> bool:
        """Mark the campaign finished if no row is left to send; True if it is."""

    def stop(self, note: str) -> None:
        """Stop the campaign (for every worker) with ``note``."""

    def store_failure(self, error: BaseException) -> str | None:
        """The one line for a ledger error no send can go on after; None for anything else."""
