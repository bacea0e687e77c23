"""A provider outage or one message it cannot take: the verdict on a row out of temporary tries.

A row that met TemporaryFailure ``max_attempts`` times used to fail for good. Right for a
message the provider cannot take while it takes the others (a poisoned message); wrong in an
outage (a 5xx for everyone): FAILED is terminal, so a one-minute regional outage would fail
every reader in flight, then every reader left, within seconds, with no way to resume.

The evidence is a success whose try *began* after the row's first failure was seen: the
provider took a message while this one kept failing, so this one is poisoned and fails. A try
that began earlier proves nothing (it may have reached the provider before the outage did).
A row that runs out of tries without that proof is *held*: back in the queue, still leased by
this worker, neither failed nor tried again. A later success that proves it poisoned fails it;
``enough`` held rows mean an outage: the send stops and they stay queued for the resumed send.
The rows in flight give up nearly together in an outage, so holding the first few is what
keeps every one of them out of FAILED.

A row still held when the send runs out of rows has no proof either: at the tail of a campaign
(an outage that begins on its last rows) no later message can show the provider works. So it
stays queued and the send stops as for an outage (``HeldRows.settle``); the next run retries it.
A row that had already used its tries in an earlier run (a send stopped by an outage, resumed
while it lasts; or a poisoned message at the tail) is held but does not count toward an outage:
a rerun's own fresh rows must fail too before it stops again. If such rows are all a run has
left held, they fail, but only once the provider has taken this campaign's message for some
reader (in any run): a poisoned tail among good readers is held one run, then fails alone,
never stopping every rerun; a campaign of which nothing was ever taken keeps stopping (exit 1)
with its readers queued, as an outage should.

The dispatcher applies the same rule to permanent refusals (Rejected), with a watch of its own:
refused before anything was accepted, it may be the message (built from the issue) rather than
the reader, so the row is held; a success proves it the reader's and fails it.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

from mailer.store.ledger import ClaimedDelivery


class Verdict(enum.Enum):
    POISONED = "poisoned"  # the provider takes other messages: fail the row
    HELD = "held"  # no proof either way yet: keep the row queued
    OUTAGE = "outage"  # enough rows held: stop the send, keep them all queued


@dataclass(frozen=True)
class GiveUp:
    """A row that ran out of temporary tries."""

    row: ClaimedDelivery
    reason: str  # what the row's error says if it fails
    first_failure: float  # time.monotonic() when its first temporary failure was seen
    fresh: bool  # on its first round of tries (not given back by an earlier outage)


class OutageWatch:
    """The give-ups still without a verdict, and the latest proof that the provider works."""

    def __init__(self, enough: int) -> None:
        self.enough = enough  # fresh held rows that make an outage
        self._lock = threading.Lock()
        self._last_success_began = float("-inf")
        self._held: list[GiveUp] = []

    def succeeded(self, began: float) -> list[GiveUp]:
        """A try begun at ``began`` was accepted: the held rows it proves poisoned."""
        with self._lock:
            self._last_success_began = max(self._last_success_began, began)
            if not self._held:
                return []
            poisoned = [g for g in self._held if g.first_failure < began]
            self._held = [g for g in self._held if g.first_failure >= began]
        return poisoned

    def proven_poisoned(self, first_failure: float) -> bool:
        """A message accepted since ``first_failure``: a row failing since then is poisoned."""
        with self._lock:
            return self._last_success_began > first_failure

    def gave_up(self, give_up: GiveUp) -> Verdict:
        with self._lock:
            if self._last_success_began > give_up.first_failure:
                return Verdict.POISONED
            self._held.append(give_up)
            fresh = sum(g.fresh for g in self._held)
        return Verdict.OUTAGE if fresh >= self.enough else Verdict.HELD

    def release(self) -> list[GiveUp]:
        """Forget the rows still held (the run is over) and return them."""
        with self._lock:
            held, self._held = self._held, []
        return held
