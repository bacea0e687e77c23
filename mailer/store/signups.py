"""Sign-ups from the public form: queued the same way for every address, then handled.

``queue_signup`` runs while the reader waits. It does the same work whatever the address's state
(normalise, count, insert one ``SignupRequest`` row, commit), so the answer's timing tells nobody
who reads the newsletter, and it enforces the limits on confirmation mails:

- per mailbox: ``bomb+1@…``, ``bomb-2@…``, ``bomb@x.example.org``, Gmail's dots and
  googlemail.com are one mailbox (mailer.addresses.limit_mailbox);
  over its limit a request is recorded as ``limited`` and answered like any other;
- per domain from one source address, and per hour in total: over these the reader is refused
  politely (the caller says so), which reveals nothing about the address. Over the total a
  network's first sign-up of the hour still passes, up to a second total (``_paused``); the web
  app also limits each network's sign-ups per hour (mailer.web.public).

The domain and hourly limits count sign-up requests rather than mails actually sent: a count that
moved only for new addresses would itself tell known from new.

:func:`claim_request` then hands the request to the opt-in workflow
(``mailer.subscriptions.workflow.handle_signup``: the subscriber row, a confirmation mail when
one is due) after the answer has gone out.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, delete, func, select, update
from sqlmodel import Session, col

from mailer.addresses import canonical_mailbox as canonical_mailbox  # re-exported
from mailer.addresses import limit_mailbox
from mailer.domain import utcnow
from mailer.errors import SignupRefused
from mailer.store.models import SignupRequest, rows_changed
from mailer.store.subscribers import normalise_address

WINDOW = timedelta(hours=1)
KEEP = timedelta(days=1)
QUEUED, DONE, LIMITED = "queued", "done", "limited"


@dataclass(frozen=True)
class SignupLimits:
    per_mailbox: int
    per_domain: int
    per_hour: int


@dataclass(frozen=True)
class SignupPressure:
    """Sign-up requests in the last hour against the hourly cap (for /admin and the log)."""

    last_hour: int
    cap: int

    @property
    def paused(self) -> bool:
        return self.last_hour >= self.cap


def _mailbox_key(secret: str, mailbox: str) -> str:
    return hmac.new(secret.encode(), mailbox.encode(), hashlib.sha256).hexdigest()


def _counts(session: Session, mailbox_key: str, domain: str, ip: str | None,
            since) -> tuple[int, int, int, object]:
    """(all counted requests, those for ``domain`` from ``ip``, all rows for the mailbox, the
    oldest time). The domain count is per source: counted for everyone, 100 junk sign-ups at
    gmail.com would close the form to every Gmail reader."""
    counted = col(SignupRequest.state) != LIMITED
    same_source = col(SignupRequest.ip).is_(None) if ip is None else col(SignupRequest.ip) == ip
    row = session.execute(
        select(
            func.sum(case((counted, 1), else_=0)),
            func.sum(case((counted & (col(SignupRequest.domain) == domain) & same_source, 1), else_=0)),
            func.sum(case((col(SignupRequest.mailbox_key) == mailbox_key, 1), else_=0)),
            func.min(col(SignupRequest.at)),
        ).where(col(SignupRequest.at) >= since)
    ).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), row[3]


def _seconds_until_window_frees(oldest, now) -> int:
    if oldest is None:
        return 60
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return max(60, int((oldest + WINDOW - now).total_seconds()) + 1)


def _paused(total: int, limits: SignupLimits, first_from_network: bool) -> bool:
    """Over the hourly cap sign-ups pause, except a network's first of the hour (most readers
    sign up once): an abuser on a few networks cannot lock everyone out. That reserve is one
    more cap's worth, so a botnet of fresh networks cannot mail without end either."""
    if total < limits.per_hour:
        return False
    return not (first_from_network and total < 2 * limits.per_hour)


def queue_signup(session: Session, raw_email: str, *, ip: str | None, secret: str,
                 limits: SignupLimits, first_from_network: bool = False) -> int | None:
    """Record one sign-up; return the request's id to handle, or None when its mailbox is over
    its limit. Raises InvalidAddress, or SignupRefused over the domain or hourly limit."""
    email = normalise_address(raw_email)
    mailbox = limit_mailbox(email)
    domain = mailbox.rpartition("@")[2]
    key = _mailbox_key(secret, mailbox)
    now = utcnow()
    total, in_domain, in_mailbox, oldest = _counts(session, key, domain, ip, now - WINDOW)
    if _paused(total, limits, first_from_network):
        raise SignupRefused(
            "Sign-ups are paused for a while: we received unusually many. Please try again later.",
            _seconds_until_window_frees(oldest, now), paused=True)
    if in_domain >= limits.per_domain:
        raise SignupRefused(
            f"We received unusually many sign-ups for addresses at {domain} from your network "
            "in the last hour. Please try again later.", 600, paused=False)
    state = LIMITED if in_mailbox >= limits.per_mailbox else QUEUED
    row = SignupRequest(at=now, state=state, email=email if state == QUEUED else None, ip=ip,
                        mailbox_key=key, domain=domain)
    session.add(row)
    session.execute(delete(SignupRequest).where(col(SignupRequest.at) < now - KEEP))
    session.commit()
    return row.id if state == QUEUED else None


def claim_request(session: Session, request_id: int) -> tuple[str, str | None] | None:
    """Claim a queued request in this transaction: its (address, ip) to handle, or None when
    it was handled already (the caller commits the claim with what it does)."""
    row = session.get(SignupRequest, request_id)
    if row is None or row.state != QUEUED or row.email is None:
        return None
    email, ip = row.email, row.ip
    if not _claim(session, request_id):
        session.rollback()  # another serve process took it between our read and now
        return None
    return email, ip


def _claim(session: Session, request_id: int) -> bool:
    """Mark the request done in this transaction, only if it is still queued: with several
    `serve` processes handling leftovers at start-up, exactly one wins and mails (the others'
    UPDATE waits for the winner's commit, then matches no row). A crash before the commit rolls
    the claim back, so the request stays queued."""
    claimed = session.execute(
        update(SignupRequest)
        .where(col(SignupRequest.id) == request_id, col(SignupRequest.state) == QUEUED)
        .values(state=DONE, email=None)
        .execution_options(synchronize_session=False))
    session.expire_all()
    return rows_changed(claimed) == 1


def queued_requests(session: Session) -> list[int]:
    """Requests accepted but not handled (the app stopped in between): handled at start-up."""
    return list(session.scalars(select(col(SignupRequest.id)).where(col(SignupRequest.state) == QUEUED)
                                .order_by(col(SignupRequest.id))))


def signup_pressure(session: Session, cap: int) -> SignupPressure:
    since = utcnow() - WINDOW
    count = session.scalar(select(func.count()).select_from(SignupRequest).where(
        col(SignupRequest.at) >= since, col(SignupRequest.state) != LIMITED))
    return SignupPressure(int(count or 0), cap)
