"""The subscription workflow's states and the one table of the moves between them (issue 22 §3).

Modelled on Mailman 3's explicit subscription workflow: a reader is in one of the
:class:`~mailer.domain.SubscriberStatus` states, and an :class:`Event` (their request, their
confirmation, an unsubscribe, SES's bounce or complaint, an operator's restore, a pause, a new
address, an erasure) moves them along one row of :data:`TRANSITIONS`; nothing else does.

Every place that changes a status, or offers to, asks :func:`allows` (or :func:`require`, which
raises :class:`~mailer.errors.TransitionRefused`): the store's one status write, the opt-in
steps (:mod:`mailer.subscriptions.workflow`), SES events (:mod:`mailer.events.apply`), both
imports, the console's actions (:mod:`mailer.reader_actions`), the reader's pause and change
of address. Two questions, each answered once:

- *what an event does*: :data:`TRANSITIONS`, here;
- *who may change a status*: :func:`mailer.suppression.may_change` (an operator anything, SES's
  evidence only tightens, the Mailchimp move settles a pending address, nobody else lifts a
  suppression), which :func:`allows` asks whenever the status would change.

Pure: statuses, events and sources, no database.
"""

from __future__ import annotations

from enum import StrEnum

from mailer.domain import SubscriberStatus
from mailer.errors import TransitionRefused
from mailer.suppression import may_change


class Event(StrEnum):
    """What moves a reader from one state to the next."""

    REQUEST = "request"  # the sign-up form, again: a new confirmation link goes out
    CONFIRM = "confirm"  # the confirmation link, an operator's --confirmed, an import's consent
    UNSUBSCRIBE = "unsubscribe"  # their link, one-click, SES's list unsubscribe, an operator
    BOUNCE = "bounce"  # a permanent bounce, or too many transient ones
    COMPLAINT = "complaint"  # marked as spam
    RESTORE = "restore"  # an operator lifts a suppression or undoes a step (mailer.suppression)
    PAUSE = "pause"  # the reader's page: a pause or its end; the status stays
    CHANGE_ADDRESS = "change-address"  # the reader's page: a new address; the status stays
    FORGET = "forget"  # erasure: the row goes, only a keyed hash of the address stays


# The "state" after FORGET: no row at all.
ERASED = None
State = SubscriberStatus | None

P, A, U, B, C = (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE,
                 SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED,
                 SubscriberStatus.COMPLAINED)

# (from, to) per event: the whole workflow. A pair under no event never happens.
TRANSITIONS: dict[Event, frozenset[tuple[SubscriberStatus, State]]] = {
    # pending again: a fresh link (the status stays); unsubscribed: pending until confirmed.
    # Active or suppressed readers are not asked again: no mail, no change.
    Event.REQUEST: frozenset({(P, P), (U, P)}),
    Event.CONFIRM: frozenset({(P, A)}),
    # an unsubscribed, bounced or complained reader stays as they are
    Event.UNSUBSCRIBE: frozenset({(P, U), (A, U)}),
    Event.BOUNCE: frozenset({(P, B), (A, B), (U, B)}),
    # a complaint outranks everything, a bounce too
    Event.COMPLAINT: frozenset({(P, C), (A, C), (U, C), (B, C)}),
    # every other move between two statuses: back where a reader was before leaving, bouncing
    # or complaining (in practice an operator's: nobody else may lift a suppression)
    Event.RESTORE: frozenset({(A, P), (U, A), (B, P), (B, A), (B, U),
                              (C, P), (C, A), (C, U), (C, B)}),
    # only a reader who gets the newsletter pauses it or moves it to a new address
    Event.PAUSE: frozenset({(A, A)}),
    Event.CHANGE_ADDRESS: frozenset({(A, A)}),
    Event.FORGET: frozenset({(status, ERASED) for status in SubscriberStatus}),
}


def _state(value: SubscriberStatus | str | None) -> State:
    return None if value is None else SubscriberStatus(value)


def in_table(current: SubscriberStatus | str, to: SubscriberStatus | str | None,
             event: Event | None = None) -> bool:
    """Whether ``event`` (None: any event) takes a reader from ``current`` to ``to``."""
    pair = (SubscriberStatus(current), _state(to))
    events = TRANSITIONS.values() if event is None else (TRANSITIONS[event],)
    return any(pair in pairs for pairs in events)


def allows(current: SubscriberStatus | str, to: SubscriberStatus | str | None,
           event: Event | None = None, *, source: str) -> bool:
    """May a reader go from ``current`` to ``to`` by ``event`` (None: by whichever event takes
    them there), asked for by ``source``? A move the table has that changes the status also
    needs ``source`` to be one who may (mailer.suppression); one that keeps it (a fresh link, a
    pause, a new address) or ends the row (an erasure) lifts nothing, so anyone may."""
    current_state, to_state = SubscriberStatus(current), _state(to)
    if not in_table(current_state, to_state, event):
        return False
    if to_state is ERASED or to_state is current_state:
        return True
    return may_change(current_state, to_state, source=source)


def require(current: SubscriberStatus | str, to: SubscriberStatus | str | None, event: Event,
            *, source: str, refusal: str | None = None) -> None:
    """:func:`allows`, or TransitionRefused with ``refusal`` (or a sentence naming the move)."""
    if not allows(current, to, event, source=source):
        target = "erased" if to is None else SubscriberStatus(to).value
        raise TransitionRefused(refusal or f"a reader who is {SubscriberStatus(current).value} "
                                           f"cannot become {target} by {event.value} "
                                           f"(asked by {source})")


def from_states(to: SubscriberStatus, event: Event, *, source: str) -> list[SubscriberStatus]:
    """The statuses ``event`` may take to ``to`` for ``source``, in the enum's order: what a
    bulk update's WHERE clause matches (the CSV import's --confirmed, a change of address)."""
    return [status for status in SubscriberStatus
            if allows(status, to, event, source=source)]
