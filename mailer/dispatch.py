"""The send loop: claim → re-check the reader → personalise → transport → mark.

The dispatcher joins two small interfaces, the ledger (``mailer.store.ledger``) and a transport
(``mailer.transports.base.Transport``); the issue is rendered once per campaign and only
personalised (two string replacements) per recipient.

Threads: one feeder leases small batches of rows into a bounded queue; ``concurrency`` sender
threads take rows from it, wait for a slot from the shared :class:`RateLimiter`, move the row to
``sending``, hand the message to the transport and mark the outcome. A heartbeat thread keeps
this worker visible to its peers, takes its share of the rate (total / live workers), and
releases rows left behind by peers that died.

Errors: Throttled → slow down (AIMD) and retry, never counted against the row; TemporaryFailure
→ retry with backoff up to ``max_attempts`` then fail the row; Rejected → fail the row, go on;
AccountError (QuotaExhausted included) → stop everything, the row goes back to the queue;
AnswerLost (the request went out, its answer did not come back) → the row becomes ``unknown``
with the reason and is never retried here: SES has no idempotency key, so only a later Send or
Delivery event (or the operator's ``--resend-unknown``) settles it. Many lost answers in a row
mean the path to the provider is broken: the send stops instead of making every row unknown.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from mailer.config import Settings
from mailer.domain import DeliveryStatus, OutgoingEmail, SendQuota
from mailer.errors import AccountError, AnswerLost, Rejected, TemporaryFailure, Throttled
from mailer.ratelimit import ConcurrencyGate, RateLimiter, backoff_delay
from mailer.store import ledger
from mailer.store.ledger import ClaimedDelivery
from mailer.tokens import make_unsubscribe_token
from mailer.transports.base import Transport
from mailer import wire

log = logging.getLogger(__name__)

# -- messages ----------------------------------------------------------------------------------

class _SplitIssue:
    """The rendered issue cut once at its per-recipient links, so filling one reader in is a
    join of a few parts instead of scanning ~100 KB of HTML and text again (~350 us each time).

    ``personalise`` still decides everything: the cut points are where it puts two random
    marks, and each reader's escaped links come from running it on a tiny copy of the issue
    holding only the placeholders.
    """

    def __init__(self, rendered: Any, personalise: Callable[..., tuple[str, str]]) -> None:
        from mailer.render import MANAGE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER

        nonce = uuid.uuid4().hex
        self._marks = (f"mailerunsubscribe{nonce}", f"mailermanage{nonce}")
        html, text = personalise(rendered, unsubscribe_url=self._marks[0],
                                 manage_url=self._marks[1])
        cut = re.compile("(" + "|".join(self._marks) + ")")
        self._html = cut.split(html)
        self._text = cut.split(text)
        probe = f"{UNSUBSCRIBE_PLACEHOLDER}\x00{MANAGE_PLACEHOLDER}"
        self._probe = dataclasses.replace(rendered, html=probe, text=probe)
        self._personalise = personalise

    def fill(self, *, unsubscribe_url: str, manage_url: str) -> tuple[str, str]:
        html, text = self._personalise(self._probe, unsubscribe_url=unsubscribe_url,
                                       manage_url=manage_url)
        return (self._join(self._html, html.split("\x00")),
                self._join(self._text, text.split("\x00")))

    def _join(self, parts: list[str], values: list[str]) -> str:
        by_mark = dict(zip(self._marks, values, strict=False))
        return "".join(by_mark.get(part, part) for part in parts)


def _fast_personalise(rendered: Any, personalise: Callable[..., tuple[str, str]]):
    """``personalise`` bound to ``rendered``, through :class:`_SplitIssue` when possible."""
    def direct(**links: str) -> tuple[str, str]:
        return personalise(rendered, **links)

    if not dataclasses.is_dataclass(rendered):
        return direct
    try:
        split = _SplitIssue(rendered, personalise)
    except (ImportError, TypeError, ValueError):
        return direct
    # Trust the shortcut only if it gives exactly what personalise gives (escaping included).
    check = {"unsubscribe_url": "https://check.invalid/u?a=1&b=<2>", "manage_url": "https://check.invalid/m\"'"}
    return split.fill if split.fill(**check) == direct(**check) else direct


class MessageComposer:
    """Builds one recipient's :class:`OutgoingEmail` from the campaign's rendered issue.

    ``rendered`` is a ``mailer.render.RenderedIssue``; ``personalise`` defaults to
    ``mailer.render.personalise`` (injected in unit tests).
    """

    def __init__(self, rendered: Any, settings: Settings, *, campaign_id: int | str,
                 issue_number: int, personalise: Callable[..., tuple[str, str]] | None = None):
        if personalise is None:
            from mailer.render import personalise as personalise
        self._rendered = rendered
        self._fill = _fast_personalise(rendered, personalise)
        self._settings = settings
        self._base_url = settings.base_url.rstrip("/")
        self._campaign_id = str(campaign_id)
        self._static_headers = {
            wire.LIST_UNSUBSCRIBE_POST_HEADER: wire.ONE_CLICK,
            wire.LIST_ID_HEADER: settings.list_id,
            wire.FEEDBACK_ID_HEADER: f"{campaign_id}:{issue_number}:newsletter:{settings.feedback_id_sender}",
        }
        self._mailto = _mailto(settings.unsubscribe_mailto)

    def unsubscribe_url(self, subscriber_id: int) -> str:
        token = make_unsubscribe_token(self._settings.secret_key, subscriber_id)
        return f"{self._base_url}{wire.UNSUBSCRIBE_PATH}/{token}"

    def compose(self, delivery: ClaimedDelivery) -> OutgoingEmail:
        headers = {wire.DELIVERY_HEADER: str(delivery.id)}
        tags = {wire.CAMPAIGN_TAG: self._campaign_id, wire.DELIVERY_TAG: str(delivery.id)}
        return self._build(delivery.email, delivery.subscriber_id, headers, tags)

    def compose_test(self, address: str, subscriber_id: int | None) -> OutgoingEmail:
        """A test send outside the campaign: same message, no ledger row behind it. An address
        that is not a subscriber gets links for subscriber 0, which the web app refuses."""
        return self._build(address, subscriber_id or 0, {}, {wire.CAMPAIGN_TAG: "test"})

    def _build(self, to: str, subscriber_id: int, headers: dict[str, str],
               tags: dict[str, str]) -> OutgoingEmail:
        url = self.unsubscribe_url(subscriber_id)
        html, text = self._fill(unsubscribe_url=url, manage_url=url)
        list_unsubscribe = f"<{url}>" + (f", <{self._mailto}>" if self._mailto else "")
        return OutgoingEmail(
            to=to, sender=self._settings.from_, subject=self._rendered.subject, html=html,
            text=text, reply_to=self._settings.reply_to,
            headers={wire.LIST_UNSUBSCRIBE_HEADER: list_unsubscribe, **self._static_headers, **headers},
            tags=tags,
        )


def _mailto(value: str | None) -> str | None:
    if not value:
        return None
    address = value.removeprefix("mailto:")
    return f"mailto:{address}?subject=unsubscribe"


# -- options and results -----------------------------------------------------------------------

@dataclass(frozen=True)
class SendOptions:
    rate: float  # messages per second for the whole campaign (before sharing with peers)
    concurrency: int = 16  # sender threads; with size_concurrency, the most in flight
    size_concurrency: bool = False  # in flight = rate x observed latency (Little's law)
    limit: int | None = None  # --limit: send at most this many rows now, then stop
    batch_size: int = 50
    max_attempts: int = 5  # temporary failures per row before it fails
    heartbeat_interval: float = 5.0
    stale_after: timedelta = ledger.DEFAULT_STALE_AFTER
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_lost_in_a_row: int = 20  # lost answers with no success between them: stop the send
    breaker: Any = None  # mailer.breaker.Thresholds: pause the campaign when one is crossed
    breaker_interval: float = 5.0  # seconds between reputation checks
    canary_only: bool = False  # send only the campaign's canary sample


def effective_rate(requested: float, quota: SendQuota | None) -> float:
    """The lower of what the operator asked for and what the account allows."""
    if quota is not None and quota.max_send_rate and quota.max_send_rate > 0:
        return min(requested, quota.max_send_rate)
    return requested


MAX_SENDERS = 64  # sender threads when concurrency is sized from the rate and the latency


def choose_rate(quota: SendQuota | None, *, requested: float | None, configured: float | None,
                default: float) -> tuple[float, str]:
    """The campaign's rate and where it comes from (issue 11): the account's MaxSendRate when
    the provider reports one, lowered only by ``--rate`` (``requested``) or an explicitly set
    MAILER_SEND_RATE (``configured``); without an account rate (SMTP, outbox), those or the
    configured default."""
    asked, source = (requested, "--rate") if requested else (configured, "MAILER_SEND_RATE")
    account = quota.max_send_rate if quota is not None and quota.max_send_rate else None
    if account is None or account <= 0:
        return (asked, source) if asked else (default, "the default MAILER_SEND_RATE")
    if asked and asked < account:
        return asked, f"{source}; the account allows {account:g}"
    return account, "the account's MaxSendRate"


def choose_concurrency(requested: int | None, configured: int | None) -> tuple[int, bool]:
    """(sender threads, size them from rate and latency?): ``--concurrency`` or an explicitly
    set MAILER_SEND_CONCURRENCY fixes the number; otherwise Little's law sizes it."""
    fixed = requested or configured
    return (fixed, False) if fixed else (MAX_SENDERS, True)


@dataclass
class Progress:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    throttled: int = 0
    retried: int = 0
    lost_lease: int = 0
    unknown: int = 0  # answers lost: maybe sent, left for an event to settle
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class SendReport:
    campaign_id: int
    sent: int
    failed: int
    skipped: int
    throttled: int
    retried: int
    elapsed: float
    finished: bool  # the campaign has no queued or in-flight rows left
    stop_reason: str | None  # why this run stopped early (None: ran out of rows)
    account_error: bool  # stopped by the provider: the campaign is `stopped`
    limit_reached: bool = False
    unknown: int = 0  # rows this run left `unknown` because their answer was lost
    paused: bool = False  # the reputation breaker paused the campaign (this worker or a peer)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.account_error


_M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each sender thread its own malloc arena, each keeping freed ~100 KB message
    buffers: with 16 threads that is ~25 MB of RSS for nothing. Two arenas cost no measurable
    speed here (the GIL serialises the allocations anyway). No-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


# -- the dispatcher ----------------------------------------------------------------------------

class Dispatcher:
    def __init__(self, engine: Engine, transport: Transport, composer: MessageComposer,
                 campaign_id: int, options: SendOptions, *, quota: SendQuota | None = None,
                 worker_id: str | None = None) -> None:
        self.engine = engine
        self.transport = transport
        self.composer = composer
        self.campaign_id = campaign_id
        self.options = options
        self.worker_id = worker_id or ledger.new_worker_id()
        # At most 100 ms worth of credit after a pause: enough to absorb thread scheduling
        # jitter, too little to trip a provider that counts its rate over one second.
        self.limiter = RateLimiter(options.rate,
                                   burst=max(1.0, min(options.rate * 0.1, options.concurrency)))
        self.gate = ConcurrencyGate(options.concurrency, fixed=not options.size_concurrency)
        self.gate.size_for(options.rate)
        self.progress = Progress()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._account_error = False
        self._quota_left = quota.remaining_24h if quota is not None else None
        self._queue: queue.Queue[ClaimedDelivery | None] = queue.Queue(
            maxsize=options.concurrency + options.batch_size)
        self._claimed = 0
        self._limit_reached = False
        self._stop_heartbeat = threading.Event()
        self._lost_in_a_row = 0
        self._paused = False
        self._baseline = None  # the figures an operator reviewed before resuming

    # -- control ---------------------------------------------------------------------------
    def stop(self, reason: str, *, account_error: bool = False, paused: bool = False) -> None:
        """Finish the messages in flight, send no new ones. The first reason wins."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
                self._paused = paused
            self._account_error = self._account_error or account_error
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- run -------------------------------------------------------------------------------
    def run(self) -> SendReport:
        limit_malloc_arenas()
        ledger.register_worker(self.engine, self.worker_id, self.campaign_id, self.options.rate)
        beat = threading.Thread(target=self._heartbeat_loop, name="mailer-heartbeat", daemon=True)
        senders = [threading.Thread(target=self._sender_loop, name=f"mailer-send-{n}", daemon=True)
                   for n in range(self.options.concurrency)]
        beat.start()
        watch = None
        if self.options.breaker is not None:
            campaign = ledger.get_campaign(self.engine, self.campaign_id)
            self._baseline = ledger.breaker_baseline(campaign) if campaign else None
            watch = threading.Thread(target=self._watch_loop, name="mailer-breaker", daemon=True)
            watch.start()
        for thread in senders:
            thread.start()
        try:
            self._feed()
        except BaseException as error:
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
            want = self.options.batch_size
            if self.options.limit is not None:
                want = min(want, self.options.limit - self._claimed)
                if want <= 0:
                    self._limit_reached = True
                    return
            batch = ledger.claim_batch(self.engine, self.campaign_id, self.worker_id, want,
                                       canary_only=self.options.canary_only)
            if not batch:
                return
            self._claimed += len(batch)
            for row in batch:
                if not self._put(row):
                    return

    def _put(self, row: ClaimedDelivery) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(row, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _sender_loop(self) -> None:
        while True:
            row = self._queue.get()
            if row is None:
                return
            if self._stop.is_set() or not self.gate.acquire(self._stop):
                continue  # left leased and queued; released when the run ends
            try:
                self._deliver(row)
            except Exception as error:  # a bug, not a provider answer: stop, keep the traceback
                log.exception("unexpected error while sending delivery %s", row.id)
                self.stop(f"unexpected error: {type(error).__name__}: {error}",
                          account_error=True)
            finally:
                self.gate.release()

    def _deliver(self, row: ClaimedDelivery) -> None:
        temporary_failures = 0
        message = self.composer.compose(row)
        while True:
            if not self.limiter.acquire(self._stop):
                return
            if not self._take_quota():
                return
            began = time.monotonic()
            started = ledger.start_sending(self.engine, row.id, self.worker_id)
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
                if temporary_failures >= self.options.max_attempts:
                    ledger.mark_failed(self.engine, row.id, self.worker_id,
                                       f"gave up after {temporary_failures} attempts: {error}")
                    self._count("failed")
                    return
                self._count("retried")
                self._retry_later(row, f"temporary failure: {error}", temporary_failures)
            except Rejected as error:
                ledger.mark_failed(self.engine, row.id, self.worker_id, f"rejected: {error}")
                self._count("failed")
                return
            except AnswerLost as error:
                ledger.mark_unknown(self.engine, row.id, self.worker_id, f"answer lost: {error}")
                self._count("unknown")
                self._note_lost_answer(error)
                return
            except AccountError as error:
                # Not sent: the row goes back to the queue for the resumed send.
                ledger.mark_retry(self.engine, row.id, self.worker_id, f"account: {error}")
                self.stop(str(error), account_error=True)
                return
            except BaseException as error:
                # We cannot tell whether the message left: say so rather than risk a 2nd copy.
                ledger.mark_unknown(self.engine, row.id, self.worker_id,
                                    f"unexpected error in the transport: {error!r}")
                raise
            else:
                ledger.mark_sent(self.engine, row.id, self.worker_id, provider_id)
                self.gate.observe(time.monotonic() - began)
                self._count("sent")
                self._lost_in_a_row = 0
                return
            self._give_back_quota()
            if self._stop.is_set():
                return

    def _retry_later(self, row: ClaimedDelivery, reason: str, attempt: int) -> None:
        ledger.mark_retry(self.engine, row.id, self.worker_id, reason)
        self._stop.wait(backoff_delay(attempt, base=self.options.backoff_base,
                                      cap=self.options.backoff_cap))

    def _note_lost_answer(self, error: AnswerLost) -> None:
        with self._lock:
            self._lost_in_a_row += 1
            broken = self._lost_in_a_row >= self.options.max_lost_in_a_row
        if broken:
            self.stop(f"{self.options.max_lost_in_a_row} answers in a row were lost after the "
                      f"request was sent ({error}); the connection to the provider is failing",
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

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.progress, name, getattr(self.progress, name) + 1)

    # -- heartbeat -------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self._stop_heartbeat.wait(self.options.heartbeat_interval):
            try:
                self._beat()
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.exception("heartbeat failed")

    def _beat(self) -> None:
        live = ledger.heartbeat(self.engine, self.worker_id, self.limiter.rate,
                                stale_after=self.options.stale_after)
        self.limiter.set_ceiling(self.options.rate / live)
        self.gate.size_for(self.limiter.ceiling)
        ledger.recover_abandoned(self.engine, self.campaign_id,
                                 stale_after=self.options.stale_after)
        campaign = ledger.get_campaign(self.engine, self.campaign_id)
        if campaign is not None and campaign.status == "paused" and not self._stop.is_set():
            self.stop(campaign.pause_reason or "paused", paused=True)  # by a peer's breaker
        elif campaign is not None and campaign.status != "sending" and not self._stop.is_set():
            self.stop(f"campaign was stopped elsewhere: {campaign.note or campaign.status}",
                      account_error=True)

    # -- the reputation breaker ------------------------------------------------------------
    def _watch_loop(self) -> None:
        while not self._stop_heartbeat.wait(self.options.breaker_interval):
            if self._stop.is_set():
                continue
            try:
                self.check_reputation()
            except Exception:  # a missed check is not fatal; the next one may succeed
                log.exception("reputation check failed")

    def check_reputation(self) -> str | None:
        """Pause the campaign (every worker follows at its next beat) when the figures that
        arrived since the last review cross a threshold; returns the reason."""
        figures = ledger.reputation(self.engine, self.campaign_id)
        reason = self.options.breaker.crossed(figures.since(self._baseline))
        if reason is None:
            return None
        ledger.pause_campaign(self.engine, self.campaign_id, reason, figures)
        campaign = ledger.get_campaign(self.engine, self.campaign_id)
        if campaign is not None and campaign.status == "paused":
            self.stop(campaign.pause_reason or reason, paused=True)
        return reason

    # -- end -------------------------------------------------------------------------------
    def _limit_line(self) -> str:
        """What --limit did, in the campaign's own figures: sent 2,000 of 1,000,000."""
        counts = ledger.count_by_status(self.engine, self.campaign_id)
        total = sum(counts.values())
        return (f"sent {counts[DeliveryStatus.SENT]:,} of {total:,}; run the same command to "
                "continue")

    def _wrap_up(self) -> SendReport:
        ledger.unregister_worker(self.engine, self.worker_id)
        finished = ledger.finish_if_done(self.engine, self.campaign_id)
        reason = self._stop_reason
        if reason is None and self._limit_reached:
            reason = self._limit_line()
        peers = ledger.live_workers(self.engine, self.campaign_id,
                                    stale_after=self.options.stale_after)
        # A provider error stops every worker; a signal or a canary stops only this one while
        # peers are still sending.
        if not finished and reason is not None and not self._paused \
                and (self._account_error or peers == 0):
            ledger.stop_campaign(self.engine, self.campaign_id, reason)
        p = self.progress
        return SendReport(
            campaign_id=self.campaign_id, sent=p.sent, failed=p.failed, skipped=p.skipped,
            throttled=p.throttled, retried=p.retried, elapsed=time.monotonic() - p.started,
            finished=finished, stop_reason=None if finished else reason,
            account_error=self._account_error and not finished,
            limit_reached=self._limit_reached, unknown=p.unknown,
            paused=self._paused and not finished,
        )
