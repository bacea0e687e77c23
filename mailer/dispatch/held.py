"""The rows a send holds in its queue until a verdict (see ``mailer.dispatch.outage``): those
out of temporary tries (a provider outage, or one message it cannot take), and those refused
for good before the provider was seen taking any other message (the message's fault, or the
reader's). Enough held rows with nothing accepted stop the send with every reader queued."""

from __future__ import annotations

from collections.abc import Callable

from mailer.dispatch.lease import Lease
from mailer.dispatch.outage import GiveUp, OutageWatch, Verdict
from mailer.errors import Rejected, TemporaryFailure

PROVIDERS = {"ses": "SES", "smtp": "the SMTP server"}  # who "kept answering" in an outage


class HeldRows:
    """One watch for temporary failures and one for refusals, on one worker's lease.

    ``stop(reason)`` stops the send as an outage (rows queued); ``failed()`` counts a row failed.
    """

    def __init__(self, lease: Lease, options, transport_name: str,
                 stop: Callable[[str], None], failed: Callable[[], None]) -> None:
        self.lease = lease
        self.max_attempts = options.max_attempts
        self.outages = OutageWatch(options.max_gave_up_in_a_row)
        self.refusals = OutageWatch(options.max_refused_in_a_row)  # the same rule, for Rejected
        self.provider = PROVIDERS.get(transport_name, f"the {transport_name} transport")
        self._stop = stop
        self._failed = failed

    def succeeded(self, began: float) -> None:
        """A try begun at ``began`` was accepted: fail the held rows it proves poisoned."""
        self.fail(self.outages.succeeded(began) + self.refusals.succeeded(began))

    def gave_up(self, give_up: GiveUp, error: TemporaryFailure) -> None:
        """A row out of temporary tries: back to the queue (still ours) until the verdict, then
        failed if the provider took other messages since its first failure; enough such rows
        with none taken are an outage, which stops the send with them queued."""
        self.lease.retry(give_up.row, give_up.reason)
        verdict = self.outages.gave_up(give_up)
        if verdict is Verdict.POISONED:
            self.fail([give_up])
        elif verdict is Verdict.OUTAGE:
            self._stop(f"{self.provider} kept answering with temporary errors ({error}); "
                       f"{self.outages.enough} readers in a row ran out of their "
                       f"{self.max_attempts} tries with no message accepted meanwhile")

    def refused(self, refused: GiveUp, error: Rejected) -> None:
        """Refused for good. Until the provider is seen taking another message, that may be the
        message's fault rather than the reader's (a title no header can hold, a message SES
        will not take): held in the queue like a row out of temporary tries, and enough such
        rows stop the send with every reader still queued, so a rerun after the fix sends it."""
        if self.refusals.proven_poisoned(refused.first_failure):
            if self.lease.failed(refused.row, refused.reason):
                self._failed()
            return
        self.lease.retry(refused.row, refused.reason)
        verdict = self.refusals.gave_up(refused)
        if verdict is Verdict.POISONED:
            self.fail([refused])
        elif verdict is Verdict.OUTAGE:
            self._stop_refused(error)

    def settle(self, *, stopping: bool, sent_any: bool,
               taken_before: Callable[[], bool]) -> bool:
        """At the end of a run, the rows still held. Out of temporary tries with no proof, they
        stay queued and the send stops as for an outage, unless every one of them was already
        held by an earlier run and SES has taken this campaign's message (``taken_before``):
        then they are poisoned and fail, so a poisoned tail is held one run, never in a loop.
        Refused rows fail, unless nothing was accepted and a fresh row was refused (a list
        shorter than the rule): then the send stops with them queued. True when it stopped."""
        held, refused = self.outages.release(), self.refusals.release()
        if stopping:
            return False
        if held and (any(g.fresh for g in held) or not (sent_any or taken_before())):
            self._stop_unproven(held)
            return True
        if not sent_any and any(g.fresh for g in refused):
            self._stop_refused(refused[0].reason)
            return True
        self.fail(held + refused)  # held already by a run that stopped: proven by its rerun
        return False

    def fail(self, give_ups: list[GiveUp]) -> None:
        for give_up in give_ups:
            if self.lease.failed_held(give_up.row, give_up.reason):
                self._failed()

    def _stop_unproven(self, held: list[GiveUp]) -> None:
        readers = "1 reader" if len(held) == 1 else f"{len(held)} readers"
        self._stop(f"{self.provider} kept answering with temporary errors ({held[0].reason}); "
                   f"{readers} ran out of their {self.max_attempts} tries with no message "
                   "accepted since")

    def _stop_refused(self, error: Rejected | str) -> None:
        self._stop(f"{self.provider} refused the message for the first {self.refusals.enough} "
                   f"readers tried, none accepted ({error}): the message, not the readers, is "
                   "refused")
