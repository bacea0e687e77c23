"""The readers' use cases: subscribe (double opt-in), confirm, unsubscribe (issue 10), their
own page (issue 26).

The web app parses the request, calls one of these with its engine and settings (and, for a
confirmation mail, its transport) and presents the result; nothing here knows about HTTP. The
opt-in steps themselves, one session each, are :mod:`mailer.subscriptions.workflow`; the moves
they may make, :mod:`mailer.subscription_states`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mailer.addresses import limit_mailbox, normalise_address
from mailer.config import Settings
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import BadPause, TokenUsed, UnknownSubscriber
from mailer.render.address_mail import (
    address_changed_email,
    address_taken_email,
    confirm_new_address_email,
    manage_link_email,
    masked,
)
from mailer.render.confirm import confirmation_email
from mailer.store import address_changes, signups
from mailer.store import subscribers as store
from mailer.store.address_changes import ChangeRequest, MailKind
from mailer.store.confirmations import reader_confirmed_by
from mailer.store.db import session
from mailer.store.forgotten import ForgetReport
from mailer.store.models import Subscriber, stored_id
from mailer.store.reader_data import reader_record
from mailer.store.signups import SignupLimits
from mailer.subscription_states import Event, allows
from mailer.subscriptions import workflow
from mailer.tokens import (
    make_manage_token,
    make_unsubscribe_token,
    read_manage_token,
    read_unsubscribe_token,
)
from mailer.wire import CONFIRM_ADDRESS_PATH, MANAGE_PATH


# -- subscribe ---------------------------------------------------------------------------------

def open_transport(settings: Settings):
    """The transport confirmation mail goes out through (opened once by the caller)."""
    # imported on first use: the SES transport pulls in boto3, which start-up can skip
    from mailer.transports import get_transport

    return get_transport(settings)


def send_confirmation(settings: Settings, transport, to: str, token: str) -> None:
    """Render the confirmation mail for ``token`` and hand it to the transport."""
    confirm_url = f"{settings.base_url.rstrip('/')}/confirm/{token}"
    transport.send(confirmation_email(settings, to=to, confirm_url=confirm_url))


def signup_limits(settings: Settings) -> SignupLimits:
    return SignupLimits(per_mailbox=settings.confirm_mails_per_mailbox,
                        per_domain=settings.confirm_mails_per_domain,
                        per_hour=settings.confirm_mails_per_hour)


def queue_signup(engine, settings: Settings, raw_email: str, ip: str, *,
                 first_from_network: bool = False) -> int | None:
    """The same work for every address (see mailer.store.signups); the rest follows the
    answer. The request's id, or None when nothing follows. ``first_from_network``: no
    sign-up from the client's network led to a mail this hour (it may pass the hourly cap)."""
    with session(engine) as db:
        return signups.queue_signup(db, raw_email, ip=ip, secret=settings.secret_key,
                                    limits=signup_limits(settings),
                                    first_from_network=first_from_network)


def handle_signup(engine, settings: Settings, request_id: int):
    """After the answer: the subscriber row; its ``confirm_token`` when a mail is due."""
    with session(engine) as db:
        return workflow.handle_signup(db, request_id, secret=settings.secret_key,
                                      min_interval=settings.confirm_mail_interval)


def queued_requests(engine) -> list[int]:
    with session(engine) as db:
        return signups.queued_requests(db)


def signup_pressure(engine, settings: Settings) -> signups.SignupPressure:
    """Sign-ups in the last hour against the hourly cap."""
    with session(engine) as db:
        return signups.signup_pressure(db, settings.confirm_mails_per_hour)


# -- confirm -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfirmLink:
    """What a confirm link shows: its reader, and their manage page once it has confirmed them."""
    subscriber: Subscriber
    manage_url: str | None = None  # None: still pending, the page asks to confirm


def confirm_link(engine, settings: Settings, token: str) -> ConfirmLink:
    """The reader a confirmation link is for; changes nothing (mail scanners GET).

    Clicked again after it confirmed the reader, the link shows them subscribed while that
    confirmation stands; any other used, invalid or expired link raises.
    """
    with session(engine) as db:
        try:
            return ConfirmLink(workflow.check_confirm_token(
                db, token, secret=settings.secret_key, max_age=settings.confirm_token_max_age))
        except TokenUsed:
            subscriber = _confirmed_by(db, settings, token)
    return ConfirmLink(subscriber, _manage_url(settings, subscriber))


def confirm(engine, settings: Settings, token: str, ip: str) -> ConfirmLink:
    """Confirm the subscription; a second click on the same link confirms nothing new and
    answers the same, while that confirmation stands."""
    with session(engine) as db:
        try:
            subscriber = workflow.confirm_subscription(
                db, token, secret=settings.secret_key, max_age=settings.confirm_token_max_age,
                ip=ip)
        except TokenUsed:
            subscriber = _confirmed_by(db, settings, token)
    return ConfirmLink(subscriber, _manage_url(settings, subscriber))


def _confirmed_by(db, settings: Settings, token: str) -> Subscriber:
    subscriber = reader_confirmed_by(db, token, secret=settings.secret_key,
                                     max_age=settings.confirm_token_max_age)
    if subscriber is None:
        raise TokenUsed("this confirmation link has already been used")
    return subscriber


def _manage_url(settings: Settings, subscriber: Subscriber) -> str:
    return f"{MANAGE_PATH}/{make_manage_token(settings.secret_key, stored_id(subscriber.id))}"


# -- the reader's own page (issue 26) -------------------------------------------------------------

@dataclass(frozen=True)
class ReaderPage:
    """What the reader's own page shows: their address, its status and since when."""

    subscriber: Subscriber
    status_since: datetime
    unsubscribe_token: str  # the page's Unsubscribe button posts to the unsubscribe link


def reader_page(engine, settings: Settings, token: str) -> ReaderPage:
    """Whose page this is (a forged or unsubscribe token raises TokenInvalid); reads only."""
    with session(engine) as db:
        subscriber = _page_owner(db, settings, token)
        since = store.status_since(db, subscriber)
    return ReaderPage(subscriber, since,
                      make_unsubscribe_token(settings.secret_key, stored_id(subscriber.id)))


def _page_owner(db, settings: Settings, token: str) -> Subscriber:
    return _existing(db.get(Subscriber, read_manage_token(settings.secret_key, token)))


def _existing(subscriber: Subscriber | None) -> Subscriber:
    """The reader a link names; one that is gone (erased) is reported without any detail."""
    if subscriber is None:
        raise UnknownSubscriber("This address is not on our list: you get no mail from us.")
    return subscriber


MAX_PAUSE = timedelta(days=92)  # "up to 3 months"


def pause_reader(engine, settings: Settings, token: str, until: date | None,
                 today: date | None = None) -> datetime | None:
    """Pause: issues begun before ``until`` (00:00 UTC) skip the reader; None resumes now.
    A date not after today, or more than three months ahead, raises BadPause."""
    today = today or utcnow().date()
    if until is not None and not today < until <= today + MAX_PAUSE:
        raise BadPause(f"Pick a day after today and at most three months ahead "
                       f"(until {today + MAX_PAUSE:%-d %B %Y}).")
    ends = datetime.combine(until, time(0), tzinfo=UTC) if until is not None else None
    with session(engine) as db:
        subscriber = _page_owner(db, settings, token)
        source = "manage-pause" if ends else "manage-resume"
        if not allows(subscriber.status, subscriber.status, Event.PAUSE, source=source):
            raise BadPause("Only a subscription that receives the newsletter can be paused.")
        store.set_pause(db, subscriber, ends, source=source)
    return ends


def export_reader(engine, settings: Settings, token: str) -> dict:
    """Download my data: everything held about the page's reader."""
    with session(engine) as db:
        return reader_record(db, _page_owner(db, settings, token))


def erase_reader(engine, settings: Settings, token: str) -> ForgetReport:
    """Erase me: what `mailer subscribers forget` does, for the page's own reader. Only a keyed
    hash of the address stays, so no import or sign-up brings it back."""
    with session(engine) as db:
        subscriber = _page_owner(db, settings, token)
        return store.forget_subscriber(db, subscriber.email,
                                       secret=settings.require_secret_key())


# -- mail me my link (issue 26) -----------------------------------------------------------------

# The statuses whose reader is mailed their page's link on request: those we still mail.
# Unsubscribed, bounced and complained readers get nothing (they asked for, or get, no mail),
# and neither does an address that is not on the list or was forgotten.
LINK_MAILED_STATUSES = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)


def link_request_address(raw: str) -> str:
    """The address typed on ``/manage``, normalised; InvalidAddress for one that is no address
    at all (the same check whether or not it is on the list)."""
    return normalise_address(raw)


def link_mail_key(address: str) -> str:
    """What the hourly allowance of link mails counts by: the mailbox (its spellings, ``+tag``s
    and Gmail's dots alike), whatever the address's state."""
    return f"manage-link:{limit_mailbox(address)}"


def mail_manage_link(engine, settings: Settings, transport, address: str) -> bool:
    """After the answer: the link to their page, to an address on the list that is still
    mailed, at that address (as the list spells it) only; nothing to anyone else. The mail is
    built either way, so the work after the answer is the same too. True when one was sent."""
    with session(engine) as db:
        holder = store.get_by_email(db, address)  # a forgotten address has no row
        to = holder.email if holder is not None else address
        token = make_manage_token(settings.secret_key,
                                  stored_id(holder.id) if holder is not None else 0)
        mailed = holder is not None and SubscriberStatus(holder.status) in LINK_MAILED_STATUSES
    url = f"{settings.base_url.rstrip('/')}{MANAGE_PATH}/{token}"
    mail = manage_link_email(settings, to=to, manage_url=url)
    if mailed:
        transport.send(mail)
    return mailed


# -- change my address (issue 26) ----------------------------------------------------------------

def request_address_change(engine, settings: Settings, token: str,
                           raw_new: str) -> ChangeRequest:
    """Record the pending change on the page's reader; the same work for any new address.
    The mail follows with :func:`mail_address_change`, after the answer."""
    with session(engine) as db:
        subscriber = _page_owner(db, settings, token)
        return address_changes.request_change(db, subscriber, raw_new,
                                              secret=settings.require_secret_key())


def mail_address_change(engine, settings: Settings, transport, request: ChangeRequest) -> MailKind:
    """The mail for a change asked for: the link to a free address, a notice (no link) to one
    already on the list, nothing to a forgotten, unsubscribed or suppressed one. Each mail is
    built either way, so the three cases cost the same."""
    with session(engine) as db:
        kind, to = address_changes.mail_for_request(db, request.new,
                                                    secret=settings.require_secret_key())
    url = f"{settings.base_url.rstrip('/')}{CONFIRM_ADDRESS_PATH}/{request.token}"
    confirm = confirm_new_address_email(settings, to=request.new, old=request.old,
                                        confirm_url=url)
    notice = address_taken_email(settings, to=to)
    if kind is MailKind.CONFIRM:
        transport.send(confirm)
    elif kind is MailKind.TAKEN:
        transport.send(notice)
    return kind


@dataclass(frozen=True)
class AddressChange:
    """A change of address a link makes (or made), and the reader's page afterwards."""
    old: str
    new: str
    manage_url: str

    @property
    def old_shown(self) -> str:
        """The old address as the link's page shows it: whoever holds the new mailbox learns
        no more of it than the mail told them."""
        return masked(self.old)


def address_change_link(engine, settings: Settings, token: str) -> AddressChange:
    """What the link in the new address's mail would change; reads only."""
    with session(engine) as db:
        link = address_changes.check_link(db, token, secret=settings.require_secret_key(),
                                          max_age=settings.confirm_token_max_age)
    return AddressChange(link.old, link.new, _manage_url(settings, link.subscriber))


def confirm_address_change(engine, settings: Settings, token: str, ip: str) -> AddressChange:
    """Spend the link: the new address replaces the old on the reader's one row."""
    with session(engine) as db:
        link = address_changes.confirm_change(db, token, secret=settings.require_secret_key(),
                                              max_age=settings.confirm_token_max_age, ip=ip)
    return AddressChange(link.old, link.new, _manage_url(settings, link.subscriber))


def mail_address_changed(settings: Settings, transport, change: AddressChange) -> None:
    """The short notice to the old address once the change is made."""
    transport.send(address_changed_email(settings, to=change.old, new=change.new))


# -- unsubscribe -------------------------------------------------------------------------------

def subscriber_of(engine, settings: Settings, token: str) -> Subscriber:
    """Whose unsubscribe link this is (a forged link raises TokenInvalid)."""
    subscriber_id = read_unsubscribe_token(settings.secret_key, token)
    with session(engine) as db:
        subscriber = db.get(Subscriber, subscriber_id)
    return _existing(subscriber)


def unsubscribe(engine, settings: Settings, token: str, source: str) -> Subscriber:
    """Unsubscribe the link's reader, recording ``source`` (one-click or web) for consent."""
    subscriber_id = read_unsubscribe_token(settings.secret_key, token)  # forged: TokenInvalid
    with session(engine) as db:
        if db.get(Subscriber, subscriber_id) is None:
            raise UnknownSubscriber("this address is no longer on the list")
        return workflow.unsubscribe_with_token(db, token, secret=settings.secret_key,
                                               source=source)
