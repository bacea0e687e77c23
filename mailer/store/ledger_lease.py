"""One worker's hold on one campaign in the ledger: the store's side of the dispatcher's
``mailer.dispatch.Lease`` interface (issue 22 §1).

A :class:`LedgerLease` is bound to an engine, a campaign and a worker id, so the dispatcher
says ``lease.claim(50)`` or ``lease.sent(row, message_id)`` instead of passing those three to
fifteen ledger functions. It adds no policy: each method is one ledger call.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from mailer.domain import DeliveryStatus, Reputation
from mailer.store import ledger
from mailer.store.ledger import ClaimedDelivery
from mailer.store.models import Campaign


class LedgerLease:
    def __init__(self, engine: Engine, campaign_id: int, worker_id: str | None = None, *,
                 stale_after: timedelta = ledger.DEFAULT_STALE_AFTER) -> None:
        self.engine = engine
        self.campaign_id = campaign_id
        self.worker_id = worker_id or ledger.new_worker_id()
        self.stale_after = stale_after  # a peer silent this long is taken for dead

    # -- this worker among its peers -------------------------------------------------------
    def join(self, rate: float) -> None:
        ledger.register_worker(self.engine, self.worker_id, self.campaign_id, rate)

    def beat(self, rate: float) -> int:
        """Say this worker is alive at ``rate``; the number of live workers sharing the send."""
        return ledger.heartbeat(self.engine, self.worker_id, rate, stale_after=self.stale_after)

    def recover_abandoned(self) -> ledger.Recovery:
        """Give back the rows of peers that died."""
        return ledger.recover_abandoned(self.engine, self.campaign_id,
                                        stale_after=self.stale_after)

    def live_peers(self) -> int:
        return ledger.live_workers(self.engine, self.campaign_id, stale_after=self.stale_after)

    def leave(self) -> None:
        ledger.unregister_worker(self.engine, self.worker_id)

    # -- rows ------------------------------------------------------------------------------
    def claim(self, limit: int, *, canary_only: bool = False) -> list[ClaimedDelivery]:
        return ledger.claim_batch(self.engine, self.campaign_id, self.worker_id, limit,
                                  canary_only=canary_only)

    def start_sending(self, row: ClaimedDelivery) -> DeliveryStatus | None:
        """SENDING when the row is this worker's to send now; SKIPPED when its reader left
        meanwhile; None when the lease on it was lost."""
        return ledger.start_sending(self.engine, row.id, self.worker_id)

    def sent(self, row: ClaimedDelivery, provider_message_id: str) -> bool:
        return ledger.mark_sent(self.engine, row.id, self.worker_id, provider_message_id)

    def start_sending_batch(self, rows: list[ClaimedDelivery]) -> list[DeliveryStatus | None]:
        """:meth:`start_sending` for each row, in one ledger transaction."""
        return ledger.start_sending_many(self.engine, [row.id for row in rows], self.worker_id)

    def sent_batch(self, sent: list[tuple[ClaimedDelivery, str]]) -> list[bool]:
        """:meth:`sent` for each (row, provider message id), in one ledger transaction."""
        return ledger.mark_sent_many(self.engine, self.worker_id,
                                     [(row.id, provider_id) for row, provider_id in sent])

    def failed(self, row: ClaimedDelivery, reason: str) -> bool:
        return ledger.mark_failed(self.engine, row.id, self.worker_id, reason)

    def failed_held(self, row: ClaimedDelivery, reason: str) -> bool:
        """Fail a row given back to the queue (still ours) while its verdict was awaited."""
        return ledger.mark_failed_held(self.engine, row.id, self.worker_id, reason)

    def retry(self, row: ClaimedDelivery, reason: str) -> bool:
        return ledger.mark_retry(self.engine, row.id, self.worker_id, reason)

    def unknown(self, row: ClaimedDelivery, reason: str) -> bool:
        return ledger.mark_unknown(self.engine, row.id, self.worker_id, reason)

    # -- the campaign ----------------------------------------------------------------------
    def campaign(self) -> Campaign | None:
        return ledger.get_campaign(self.engine, self.campaign_id)

    def reputation(self) -> Reputation:
        return ledger.reputation(self.engine, self.campaign_id)

    def pause(self, reason: str, figures: Reputation) -> bool:
        return ledger.pause_campaign(self.engine, self.campaign_id, reason, figures)

    def counts(self) -> dict[DeliveryStatus, int]:
        return ledger.count_by_status(self.engine, self.campaign_id)

    def finish_if_done(self) -> bool:
        return ledger.finish_if_done(self.engine, self.campaign_id)

    def stop(self, note: str) -> None:
        ledger.stop_campaign(self.engine, self.campaign_id, note)

    def baseline(self) -> Reputation | None:
        """The figures an operator reviewed before resuming the paused campaign, if any."""
        campaign = self.campaign()
        return ledger.breaker_baseline(campaign) if campaign is not None else None

    # -- failures of the store itself --------------------------------------------------------
    def store_failure(self, error: BaseException) -> str | None:
        """The one line for a database error no send can go on after (a full disk, a damaged
        file); None for anything else."""
        if not isinstance(error, DBAPIError):
            return None
        mapped = ledger.store_error(self.engine, error)
        return str(mapped) if mapped is not None else None
