"""The send loop: claim → re-check the reader → personalise → transport → mark.

The dispatcher joins two small interfaces: its :class:`~mailer.dispatch.lease.Lease` on the
campaign in the ledger (``mailer.store.ledger_lease`` implements it) and a transport
(``mailer.transports.base.Transport``); the issue is rendered once per campaign and only
personalised (two string replacements) per recipient (``mailer.dispatch.compose``).

Threads: one feeder leases small batches of rows into a bounded queue; ``concurrency`` sender
threads take rows from it, wait for a slot from the shared :class:`RateLimiter`, move the row to
``sending``, hand the message to the transport and mark the outcome. A heartbeat thread keeps
this worker visible to its peers, takes its share of the rate (total / live workers), and
releases rows left behind by peers that died.

Errors: Throttled → slow down (AIMD) and retry, never counted against the row; TemporaryFailure
→ retry with backoff up to ``max_attempts``, then fail the row if the provider took other
messages meanwhile, else hold it in the queue: several held rows, or any still held when the
rows run out, mean an outage, and the send stops with them queued (``mailer.dispatch.outage``, ``held``); Rejected → fail the row, go on, once
the provider was seen taking another message (until then the same rule holds it: the first
readers all refused means the message is at fault, and the send stops with them queued);
AccountError (QuotaExhausted included) → stop everything, the row goes back to the queue;
AnswerLost (the request went out, its answer did not come back) → the row becomes ``unknown``
with the reason and is never retried here: SES has no idempotency key, so only a later Send or
Delivery event (or the operator's ``--resend-unknown``) settles it. Many lost answers in a row
mean the path to the provider is broken: the send stops instead of making every row unknown.
Many readers per call (issue 23 §3): with a :class:`~mailer.transports.base.BatchTransport`
(SES SendBulkEmail) the feeder queues a call's worth of rows (up to 50, at most half a second
of the rate) and a sender claims all of them (``sending``, one ledger transaction) before the
call, waits for one rate slot per message, and records each entry's own answer (sent with its
message id, refused, or tried again one by one); a whole call that fails is handled as above
for every row in it, so a lost answer leaves all of them ``unknown``. A transport that turns
out to lack batching (an account without SendBulkEmail) is used one message per call from then.
A full disk (the outbox's or the database's) or a database that cannot be written stops the
send with one line and the rows not yet sent still queued (``mailer.dispatch.faults``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from typing import TYPE_CHECKING

from mailer.dispatch import faults
from mailer.dispatch.compose import MessageComposer
from mailer.dispatch.held import HeldRows
from mailer.dispatch.lease import Lease
from mailer.dispatch.options import RunCounts, SendOptions, SendReport, limit_malloc_arenas
from mailer.dispatch.outage import GiveUp
from mailer.domain import CampaignStatus, DeliveryStatus, Reputation, SendQuota
from mailer.errors import (
    AccountError,
    AnswerLost,
    Rejected,
    TemporaryFailure,
    Throttled,
    TransportError,
)
from mailer.ratelimit import ConcurrencyGate, RateLimiter, backoff_delay
from mailer.transports.base import BatchTransport, Transport

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mailer.store.ledger import ClaimedDelivery

log = logging.getLogger(__name__)

# -- the dispatcher ----------------------------------------------------------------------------

def _lease_on(engine: Engine, campaign_id: int, options: SendOptions) -> Lease:
    from mailer.store.ledger_lease import LedgerLease

    return LedgerLease(engine, campaign_id, stale_after=options.stale_after)


class Dispatcher:
    def __init__(self, ledger: Lease | Engine, transport: Transport, composer: MessageComposer,
                 campaign_id: int, options: SendOptions, *,
                 quota: SendQuota | None = None) -> None:
        """``ledger``: this worker's :class:`Lease` on the campaign, or an engine to take one
        on the ledger there."""
        self.transport = transport
        self.composer = composer
        self.campaign_id = campaign_id
        self.options = options
        self.lease = ledger if isinstance(ledger, Lease) else _lease_on(ledger, campaign_id,
                                                                          options)
        self.worker_id = self.lease.worker_id
        # At most 100 ms worth of credit after a pause: enough to absorb thread scheduling
        # jitter, too little to trip a provider that counts its rate over one second.
        self.limiter = RateLimiter(options.rate,
                                   burst=max(1.0, min(options.rate * 0.1, options.concurrency)))
        self.gate = ConcurrencyGate(options.concurrency, fixed=not options.size_concurrency)
        self.gate.size_for(options.rate)
        self.progress = RunCounts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._account_error = False
        self._quota_left = quota.remaining_24h if quota is not None else None
        # Many readers per provider call (SES SendBulkEmail) when the transport can: at most
        # half a second of the rate per call, so one call is never a burst over the account's
        # rate, and never more than the transport takes.
        self._batcher = transport if isinstance(transport, BatchTransport) else None
        self._per_call = 1
        if self._batcher is not None and self._batcher.can_batch:
            self._per_call = max(1, min(int(self._batcher.max_batch), int(options.rate // 2)))
        # Each item is one provider call's rows (one row when not batching).
        self._queue: queue.Queue[list[ClaimedDelivery] | None] = queue.Queue(
            maxsize=options.concurrency + max(1, options.batch_size // self._per_call))
        self._claimed = 0
        self._limit_reached = False
        self._stop_heartbeat = threading.Event()
        self._lost_in_a_row = 0
        self.held = HeldRows(self.lease, options, transport.name, self._stop_held,
                             lambda: self._count("failed"))
        self._outage = False
        self._paused = False
        self._disk_full = False
        self._baseline: Reputation | None = None  # the figures an operator reviewed before resuming

    # -- control ---------------------------------------------------------------------------
    def stop(self, reason: str, *, account_error: bool = False, paused: bool = False,
             outage: bool = False, disk_full: bool = False) -> None:
        """Finish the messages in flight, send no new ones. The first reason wins."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
                self._paused = paused
                self._outage = outage
                self._disk_full = disk_full
            self._account_error = self._account_error or account_error
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- run -------------------------------------------------------------------------------
    def run(self) -> SendReport:
        limit_malloc_arenas()
        self.lease.join(self.options.rate)
        beat = threading.Thread(target=self._heartbeat_loop, name="mailer-heartbeat", daemon=True)
        senders = [threading.Thread(target=self._sender_loop, name=f"mailer-send-{n}", daemon=True)
                   for n in range(self.options.concurrency)]
        beat.start()
        watch = None
        if self.options.breaker is not None:
            self._baseline = self.lease.baseline()
            watch = threading.Thread(target=self._watch_loop, name="mailer-breaker", daemon=True)
            watch.start()
        for thread in senders:
            thread.start()
        try:
            if self.options.breaker is not None:
                # Before the first message, with the figures the periodic check uses: a run
                # shorter than breaker_interval (a resume, a --limit, a worker) is otherwise
                # never checked, and a campaign already over a threshold sends on.
                self.check_reputation()
            self._feed()
        except BaseException as error:
            if not self._store_failed(error):
                self.stop(f"interrupted by {type(error).__name__}: {error}", account_error=True)
                raise
        finally:
            for _ in senders:
                self._queue.put(None)  # after the rows already queued: they are still sent
            for thread in senders:
                thread.join()
            self._stop_heartbeat.set()
            beat.join()
            if watch is not None:
                watch.join()
            report = self._wrap_up()
        return report

    def _feed(self) -> None:
        while not self._stop.is_set():
            # While batching, a few calls' worth per claim (one claim per call would be a
            # ledger write for every call).
            want = max(self.options.batch_size, 4 * self._per_call) if self._batching() \
                else self.options.batch_size
            if self.options.limit is not None:
                want = min(want, self.options.limit - self._claimed)
                if want <= 0:
                    self._limit_reached = True
                    return
            batch = self.lease.claim(want, canary_only=self.options.canary_only)
            if not batch:
                return
            self._claimed += len(batch)
            step = self._per_call if self._batching() else 1
            for start in range(0, len(batch), step):
                if not self._put(batch[start:start + step]):
                    return

    def _put(self, rows: list[ClaimedDelivery]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(rows, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _batching(self) -> bool:
        return self._batcher is not None and self._per_call > 1 and self._batcher.can_batch

    def _sender_loop(self) -> None:
        while True:
            rows = self._queue.get()
            if rows is None:
                return
            if not self._stop.is_set() and self.gate.acquire(self._stop):
                try:
                    if len(rows) > 1 and self._batching():
                        self._deliver_batch(rows)
                    else:  # batching turned off meanwhile: these rows one by one
                        for row in rows:
                            if self._stop.is_set():
                                break
                            self._deliver(row)
                except Exception as error:  # a bug, not a provider answer: stop, keep the traceback
                    if not self._store_failed(error):
                        log.exception("unexpected error while sending deliveries %s",
                                      ", ".join(str(row.id) for row in rows))
                        self.stop(f"unexpected error: {type(error).__name__}: {error}",
                                  account_error=True)
                finally:
                    self.gate.release()
            # else: left leased and queued; released when the run ends

    def _deliver_batch(self, rows: list[ClaimedDelivery]) -> None:
        """Many readers in one provider call. Each row is claimed (``sending``) in the ledger
        before the call and gets its own outcome after it, as one by one; a whole call that
        failed is handled as one message's failure would be, for every row in it."""
        assert self._batcher is not None
        messages = {row.id: self.composer.compose_templated(row) for row in rows}
        temporary_failures = 0
        first_failure: float | None = None
        while rows:
            if not self.limiter.acquire_many(len(rows), self._stop):
                return
            rows = self._take_quota_for(rows)
            if not rows:
                return
            began = time.monotonic()
            rows = self._start_batch(rows)
            if not rows:
                return
            try:
                results = self._batcher.send_batch([messages[row.id] for row in rows])
            except Throttled as error:
                self.limiter.throttled()
                self._count("throttled", len(rows))
                self._retry_all_later(rows, f"throttled: {error}", 1)
            except TemporaryFailure as error:
                temporary_failures += 1
                first_failure = first_failure or time.monotonic()
                if temporary_failures >= self.options.max_attempts:
                    for row in rows:
                        self.held.gave_up(GiveUp(
                            row, f"gave up after {temporary_failures} attempts: {error}",
                            first_failure, fresh=row.attempts < self.options.max_attempts),
                            error)
                    return
                self._count("retried", len(rows))
                self._retry_all_later(rows, f"temporary failure: {error}", temporary_failures)
            except Rejected as error:
                for row in rows:
                    self.held.refused(GiveUp(row, f"rejected: {error}", began,
                                             fresh=row.attempts == 0), error)
                return
            except AnswerLost as error:
                for row in rows:
                    self.lease.unknown(row, f"answer lost: {error}")
                self._count("unknown", len(rows))
                self._note_lost_answer(error, len(rows))
                return
            except AccountError as error:
                for row in rows:
                    self.lease.retry(row, f"account: {error}")
                self.stop(str(error), account_error=True, disk_full=faults.disk_full(error))
                return
            except BaseException as error:
                for row in rows:
                    self.lease.unknown(row, f"unexpected error in the transport: {error!r}")
                raise
            else:
                self._settle_batch(rows, results, began)
                return
            for _ in rows:
                self._give_back_quota()
            if self._stop.is_set():
                return

    def _take_quota_for(self, rows: list[ClaimedDelivery]) -> list[ClaimedDelivery]:
        """The rows the account's 24-hour quota still covers (the rest stay queued)."""
        taken = []
        for row in rows:
            if not self._take_quota():
                break
            taken.append(row)
        return taken

    def _start_batch(self, rows: list[ClaimedDelivery]) -> list[ClaimedDelivery]:
        """Claim every row in the ledger (one transaction); the rows to send now."""
        many = getattr(self.lease, "start_sending_batch", None)
        started = many(rows) if many else [self.lease.start_sending(row) for row in rows]
        going = []
        for row, state in zip(rows, started, strict=True):
            if state is DeliveryStatus.SENDING:
                going.append(row)
                continue
            self._count("skipped" if state is DeliveryStatus.SKIPPED else "lost_lease")
            self._give_back_quota()
        return going

    def _retry_all_later(self, rows: list[ClaimedDelivery], reason: str, attempt: int) -> None:
        for row in rows:
            self.lease.retry(row, reason)
        self._stop.wait(backoff_delay(attempt, base=self.options.backoff_base,
                                      cap=self.options.backoff_cap))

    def _settle_batch(self, rows: list[ClaimedDelivery], results: list[str | TransportError],
                      began: float) -> None:
        """Each row's own outcome from the call's per-message answers."""
        if len(results) != len(rows):  # a transport bug: which row got which answer is unknown
            for row in rows:
                self.lease.unknown(row, "the transport answered a batch with the wrong count")
            self._count("unknown", len(rows))
            raise RuntimeError(f"send_batch returned {len(results)} results for {len(rows)}")
        sent = [(row, result) for row, result in zip(rows, results, strict=True)
                if isinstance(result, str)]
        if sent:
            many = getattr(self.lease, "sent_batch", None)
            if many:
                many(sent)
            else:
                for row, provider_id in sent:
                    self.lease.sent(row, provider_id)
            self.gate.observe(time.monotonic() - began)
            self._count("sent", len(sent))
            with self._lock:
                self._lost_in_a_row = 0
            self.held.succeeded(began)
        again = []
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, str):
                continue
            if isinstance(result, AnswerLost):
                self.lease.unknown(row, f"answer lost: {result}")
                self._count("unknown")
                self._note_lost_answer(result)
            elif isinstance(result, Rejected):
                self.held.refused(GiveUp(row, f"rejected: {result}", began,
                                         fresh=row.attempts == 0), result)
            elif isinstance(result, AccountError):
                self.lease.retry(row, f"account: {result}")
                self._give_back_quota()
                self.stop(str(result), account_error=True)
            else:  # Throttled, TemporaryFailure: this reader alone, tried again one by one
                if isinstance(result, Throttled):
                    self.limiter.throttled()
                    self._count("throttled")
                else:
                    self._count("retried")
                self.lease.retry(row, f"temporary failure: {result}")
                self._give_back_quota()
                again.append(row)
        for row in again:
            if self._stop.is_set():
                return
            self._deliver(row)

    def _deliver(self, row: ClaimedDelivery) -> None:
        temporary_failures = 0
        first_failure: float | None = None
        message = self.composer.compose(row)
        while True:
            if not self.limiter.acquire(self._stop):
                return
            if not self._take_quota():
                return
            began = time.monotonic()
            started = self.lease.start_sending(row)
            if started is DeliveryStatus.SKIPPED:
                self._count("skipped")
                self._give_back_quota()
                return
            if started is None:
                self._count("lost_lease")
                self._give_back_quota()
                return
            try:
                provider_id = self.transport.send(message)
            except Throttled as error:
                self.limiter.throttled()
                self._count("throttled")
                self._retry_later(row, f"throttled: {error}", 1)
            except TemporaryFailure as error:
                temporary_failures += 1
                first_failure = first_failure or time.monotonic()
                if temporary_failures >= self.options.max_attempts:
                    self.held.gave_up(GiveUp(
                        row, f"gave up after {temporary_failures} attempts: {error}",
                        first_failure, fresh=row.attempts < self.options.max_attempts), error)
                    return
                self._count("retried")
                self._retry_later(row, f"temporary failure: {error}", temporary_failures)
            except Rejected as error:
                self.held.refused(GiveUp(row, f"rejected: {error}", began,
                                         fresh=row.attempts == 0), error)
                return
            except AnswerLost as error:
                self.lease.unknown(row, f"answer lost: {error}")
                self._count("unknown")
                self._note_lost_answer(error)
                return
            except AccountError as error:
                # Not sent: the row goes back to the queue for the resumed send.
                self.lease.retry(row, f"account: {error}")
                self.stop(str(error), account_error=True, disk_full=faults.disk_full(error))
                return
            except BaseException as error:
                # We cannot tell whether the message left: say so rather than risk a 2nd copy.
                self.lease.unknown(row, f"unexpected error in the transport: {error!r}")
                raise
            else:
                self.lease.sent(row, provider_id)
                self.gate.observe(time.monotonic() - began)
                self._count("sent")
                self._lost_in_a_row = 0
                self.held.succeeded(began)
                return
            self._give_back_quota()
            if self._stop.is_set():
                return

    def _retry_later(self, row: ClaimedDelivery, reason: str, attempt: int) -> None:
        self.lease.retry(row, reason)
        self._stop.wait(backoff_delay(attempt, base=self.options.backoff_base,
                                      cap=self.options.backoff_cap))

    def _stop_held(self, reason: str) -> None:
        self.stop(reason, account_error=True, outage=True)

    def _note_lost_answer(self, error: AnswerLost, rows: int = 1) -> None:
        """``rows``: the messages the lost answer was for. Counted in messages, so a path
        that loses every answer stops the send after about as many unknown rows with batching
        as without (two lost calls at least: one lost call is not a broken path)."""
        limit = self.options.max_lost_in_a_row
        if self._batching():
            limit = max(limit, 2 * self._per_call)
        with self._lock:
            self._lost_in_a_row += rows
            broken = self._lost_in_a_row >= limit
            lost = self._lost_in_a_row
        if broken:
            self.stop(f"{lost} answers in a row were lost after the request was sent "
                      f"({error}); the connection to the provider is failing",
                      account_error=True)

    def _take_quota(self) -> bool:
        with self._lock:
            if self._quota_left is None:
                return True
            if self._quota_left >= 1:
                self._quota_left -= 1
                return True
        self.stop("the account's 24-hour sending quota is used up; run the same command "
                  "again later to resume", account_error=True)
        return False

    def _give_back_quota(self) -> None:
        with self._lock:
            if self._quota_left is not None:
                self._quota_left += 1

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.progress, name, getattr(self.progress, name) + n)

    # -- heartbeat -------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self._stop_heartbeat.wait(self.options.heartbeat_interval):
            try:
                self._beat()
            except Exception as error:  # a missed beat is not fatal; the next one may succeed
                if not self._store_failed(error):
                    log.exception("heartbeat failed")

    def _beat(self) -> None:
        live = self.lease.beat(self.limiter.rate)
        self.limiter.set_ceiling(self.options.rate / live)
        self.gate.size_for(self.limiter.ceiling)
        self.lease.recover_abandoned()
        campaign = self.lease.campaign()
        if campaign is not None and campaign.status == CampaignStatus.PAUSED \
                and not self._stop.is_set():
            self.stop(campaign.pause_reason or "paused", paused=True)  # by a peer's breaker
        elif campaign is not None and campaign.status != CampaignStatus.SENDING \
                and not self._stop.is_set():
            self.stop(f"campaign was stopped elsewhere: {campaign.note or campaign.status}",
                      account_error=True)

    # -- the reputation breaker ------------------------------------------------------------
    def _watch_loop(self) -> None:
        while not self._stop_heartbeat.wait(self.options.breaker_interval):
            if self._stop.is_set():
                continue
            try:
                self.check_reputation()
            except Exception as error:  # a missed check is not fatal; the next one may succeed
                if not self._store_failed(error):
                    log.exception("reputation check failed")

    def check_reputation(self) -> str | None:
        """Pause the campaign (every worker follows at its next beat) when the figures that
        arrived since the last review cross a threshold; returns the reason."""
        breaker = self.options.breaker
        if breaker is None:
            return None  # no thresholds for this send: nothing to cross
        figures = self.lease.reputation()
        reason = breaker.crossed(figures.since(self._baseline))
        if reason is None:
            return None
        self.lease.pause(reason, figures)
        campaign = self.lease.campaign()
        if campaign is not None and campaign.status == CampaignStatus.PAUSED:
            self.stop(campaign.pause_reason or reason, paused=True)
        return reason

    # -- end -------------------------------------------------------------------------------
    def _limit_line(self) -> str:
        """What --limit did, in the campaign's own figures: sent 2,000 of 1,000,000."""
        counts = self.lease.counts()
        total = sum(counts.values())
        return (f"sent {counts[DeliveryStatus.SENT]:,} of {total:,}; run the same command to "
                "continue")

    def _store_failed(self, error: BaseException) -> bool:
        """A full disk or an unwritable database: nothing can be recorded, so the send stops
        (one line, rows not yet sent still queued). False for anything else."""
        reason = self.lease.store_failure(error)
        if reason is not None:
            self.stop(reason, account_error=True, disk_full=faults.disk_full(error))
        return reason is not None

    def _wrap_up(self) -> SendReport:
        try:
            finished = self._settle()
        except Exception as error:
            if not self._store_failed(error):
                raise
            finished = False  # nothing more can be written; the next run recovers the rows
        p = self.progress
        return SendReport(
            campaign_id=self.campaign_id, sent=p.sent, failed=p.failed, skipped=p.skipped,
            throttled=p.throttled, retried=p.retried, elapsed=time.monotonic() - p.started,
            finished=finished, stop_reason=None if finished else self._stop_reason,
            account_error=self._account_error and not finished,
            limit_reached=self._limit_reached, unknown=p.unknown,
            paused=self._paused and not finished, outage=self._outage and not finished,
            disk_full=self._disk_full and not finished,
            notices=tuple(notice for notice in (
                getattr(self._batcher, "batch_notice", None),) if notice),
        )

    def _campaign_sent_any(self) -> bool:
        """SES took this campaign's message for some reader, in this run or an earlier one."""
        return self.lease.counts().get(DeliveryStatus.SENT, 0) > 0

    def _settle(self) -> bool:
        """Fail or keep the held rows, leave the campaign, finish or stop it: True if finished."""
        self.held.settle(stopping=self._stop.is_set(), sent_any=self.progress.sent > 0,
                         taken_before=self._campaign_sent_any)
        self.lease.leave()
        finished = self.lease.finish_if_done()
        if self._stop_reason is None and self._limit_reached:
            self._stop_reason = self._limit_line()
        reason = self._stop_reason
        peers = self.lease.live_peers()
        # A provider error stops every worker; a signal or a canary stops only this one while
        # peers are still sending.
        if not finished and reason is not None and not self._paused \
                and (self._account_error or peers == 0):
            self.lease.stop(reason)
        return finished
