"""The send loop and what it needs: one reader's message, the options, and this worker's lease
on the campaign. ``Dispatcher`` joins the ledger (through the :class:`Lease` interface) with a
transport, so it runs on any ledger that implements it.

- ``compose``: one reader's message from the campaign's rendered issue;
- ``options``: a send's options, its pace, its running counts and its report;
- ``lease``: the ledger as the dispatcher sees it (an interface; ``mailer.store.ledger_lease``
  implements it);
- ``outage``: whether a row out of temporary tries is poisoned or caught in a provider outage;
- ``held``: the rows held for that verdict, and those refused before anything was accepted;
- ``faults``: a full disk or an unwritable database, told apart from bugs;
- ``dispatcher``: the threads that claim, send and mark.
"""

from mailer.dispatch.compose import ONE_CLICK, MessageComposer
from mailer.dispatch.dispatcher import Dispatcher
from mailer.dispatch.lease import Lease
from mailer.dispatch.options import (
    MAX_SENDERS, RunCounts, SendOptions, SendReport, choose_concurrency, choose_rate,
    effective_rate, limit_malloc_arenas,
)

__all__ = [
    "MAX_SENDERS", "ONE_CLICK", "Dispatcher", "Lease", "MessageComposer", "RunCounts",
    "SendOptions", "SendReport", "choose_concurrency", "choose_rate", "effective_rate",
    "limit_malloc_arenas",
]
