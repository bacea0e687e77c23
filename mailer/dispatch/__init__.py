"""The send loop and what it needs: one reader's message, the options, and this worker's lease
on the campaign. ``Dispatcher`` joins the ledger (through a :class:`Lease`) with a transport.

- ``compose``: one reader's message from the campaign's rendered issue;
- ``options``: a send's options, its pace, its progress and its report;
- ``lease``: one worker's hold on one campaign in the ledger;
- ``outage``: whether a row out of temporary tries is poisoned or caught in a provider outage;
- ``held``: the rows held for that verdict, and those refused before anything was accepted;
- ``faults``: a full disk or an unwritable database, told apart from bugs;
- ``dispatcher``: the threads that claim, send and mark.
"""

from mailer.dispatch.compose import ONE_CLICK, MessageComposer
from mailer.dispatch.dispatcher import Dispatcher
from mailer.dispatch.lease import Lease
from mailer.dispatch.options import (
    MAX_SENDERS, Progress, SendOptions, SendReport, choose_concurrency, choose_rate,
    effective_rate, limit_malloc_arenas,
)

__all__ = [
    "MAX_SENDERS", "ONE_CLICK", "Dispatcher", "Lease", "MessageComposer", "Progress",
    "SendOptions", "SendReport", "choose_concurrency", "choose_rate", "effective_rate",
    "limit_malloc_arenas",
]
