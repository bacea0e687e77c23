"""Start or resume a campaign, join one from another machine, send a test copy."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailer.campaigns.policy import SendFlags
from mailer.campaigns.results import AlreadySent, Recovered, already_sent, id_of, recovered
from mailer.domain import CampaignStatus, SendQuota
from mailer.errors import Rejected, SendError
from mailer.message import build_mime, header_text
from mailer.store import ledger
from mailer.store.link_counts import record_links
from mailer.store.models import Campaign

if TYPE_CHECKING:
    from mailer.config import Settings
    from mailer.transports.base import Transport


def content_sha256(rendered) -> str:
    """The version of a rendered issue a campaign is sent with."""
    return hashlib.sha256(rendered.html.encode("utf-8")).hexdigest()


# -- the transport and its pace ----------------------------------------------------------------

def open_pooled_transport(s: Settings, threads: int) -> Transport:
    """The transport a send goes out through, with a connection for each sender thread."""
    from mailer.transports import get_transport

    # One pooled connection per sender thread, plus a few for preflight.
    return get_transport(s, max_connections=threads + 4)


def _explicit(s, name: str):
    """A setting's value when the operator set it (environment or .env), else None."""
    return getattr(s, name) if name in s.model_fields_set else None


def choose_send_rate(s, requested: float | None, quota) -> tuple[float, str]:
    from mailer.dispatch import choose_rate

    return choose_rate(quota, requested=requested, configured=_explicit(s, "send_rate"),
                       default=s.send_rate)


def choose_threads(s, requested: int | None) -> tuple[int, bool]:
    """(sender threads, size them from the rate and the latency?)."""
    from mailer.dispatch import choose_concurrency

    return choose_concurrency(requested, _explicit(s, "send_concurrency"))


@dataclass(frozen=True)
class Pace:
    """How fast a run sends, and why."""

    rate: float  # messages per second for the whole campaign
    source: str  # where the rate comes from, in words
    quota: SendQuota | None  # from the transport's preflight
    threads: int
    sized: bool  # the messages in flight follow the rate and the observed latency


def choose_pace(s: Settings, requested_rate: float | None, quota: SendQuota | None,
                threads: tuple[int, bool]) -> Pace:
    rate, source = choose_send_rate(s, requested_rate, quota)
    return Pace(rate=rate, source=source, quota=quota, threads=threads[0], sized=threads[1])


TEST_SUBJECT_PREFIX = "[test] "  # the Subject of a `send --to` copy starts with it
SUBJECT_COLUMN = 500  # characters the campaign row keeps of the Subject, for stats and /admin


def _shown_subject(rendered) -> str:
    subject = header_text(rendered.subject)
    if len(subject) > SUBJECT_COLUMN:
        subject = subject[:SUBJECT_COLUMN - 1] + "…"
    return subject


def check_message(s, rendered, number: int) -> None:
    """Build one reader's message before any campaign exists: what the issue puts in the
    headers must go out, or no campaign is started (where every row would fail, leaving the
    issue "sent" to nobody)."""
    from mailer.dispatch import MessageComposer

    # This message never leaves: signed with a throwaway key, so a dry run still needs none.
    throwaway = s.model_copy(update={"secret_key": secrets.token_urlsafe(32)})
    composer = MessageComposer(rendered, throwaway, campaign_id="check", issue_number=number)
    try:
        build_mime(composer.compose_test("reader@example.org", None))
    except Rejected as error:
        raise SendError(f"issue {number} cannot be sent: its message cannot be built "
                        f"({error}); no campaign was started") from None


# -- start or resume ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Started:
    campaign: Campaign  # as it was found (status and note before the resume)
    created: bool
    already: AlreadySent | None = None  # another run finished it meanwhile
    recovered: Recovered | None = None  # resumed: what dead workers left
    requeued: int = 0  # unknown rows queued again (--resend-unknown)
    settled: int = 0  # unknown rows queued again by the settle rule (issue 21 §1)
    version_changed: bool = False  # the issue renders differently than when it started


def start_send(db, rendered, number: int, *, transport_name: str, flags: SendFlags,
               canary_sample: int | None = None) -> Started:
    """Start the issue's campaign (choosing its canary sample) or resume the open one."""
    sha = content_sha256(rendered)
    start = ledger.begin_campaign(db, issue_number=number, subject=_shown_subject(rendered),
                                  transport=transport_name, content_sha256=sha,
                                  again=flags.again)
    campaign = start.campaign
    if getattr(rendered, "links", ()):  # link counts on: what each /l/<issue>/<n> stands for
        record_links(db, number, rendered.links)
    if start.created:
        if canary_sample:
            ledger.choose_canary(db, id_of(campaign), canary_sample)
        return Started(campaign=campaign, created=True)
    settled = 0 if flags.resend_unknown else settle(db, id_of(campaign), flags.settle_after)
    if campaign.status == CampaignStatus.FINISHED and not flags.resend_unknown and not settled:
        return Started(campaign=campaign, created=False, already=already_sent(db, campaign))
    return _resume(db, campaign, sha, flags.resend_unknown, settled)


def settle(db, campaign_id: int, settle_after) -> int:
    """Queue again the unknown rows the settle rule lets go (the decision is atomic in the
    ledger); how many."""
    return ledger.settle_unknown(db, campaign_id, settle_after).requeued


def _resume(db, campaign: Campaign, sha: str, resend_unknown: bool, settled: int) -> Started:
    resumed = id_of(campaign)
    recovery = recovered(db, resumed, ledger.recover_abandoned(db, resumed))
    requeued = ledger.requeue_unknown(db, resumed) if resend_unknown else 0
    ledger.resume_campaign(db, resumed, content_sha256=sha)
    return Started(campaign=campaign, created=False, recovered=recovery, requeued=requeued,
                   settled=settled, version_changed=sha != campaign.content_sha256)


# -- join from another machine -----------------------------------------------------------------

def pick_open_campaign(db, wanted: int | None) -> Campaign | None:
    """The campaign a worker joins: the one asked for, else the only one being sent."""
    if wanted is not None:
        campaign = ledger.get_campaign(db, wanted)
        if campaign is None:
            raise SendError(f"there is no campaign {wanted}")
        if campaign.status != CampaignStatus.SENDING:
            how = " --resume" if campaign.status == CampaignStatus.PAUSED else ""
            raise SendError(f"campaign {wanted} is {campaign.status}, not being sent; "
                            f"resume it with `mailer send --issue {campaign.issue_number}{how}`")
        return campaign
    campaigns = ledger.open_campaigns(db)
    if len(campaigns) > 1:
        ids = ", ".join(str(c.id) for c in campaigns)
        raise SendError(f"several campaigns are being sent ({ids}); pick one with --campaign")
    return campaigns[0] if campaigns else None


def check_same_version(campaign: Campaign, rendered) -> None:
    if content_sha256(rendered) != campaign.content_sha256:
        # Joining would send readers two versions of one campaign. The send process owns the
        # version: `mailer send` resumes with the new one for everyone still waiting.
        raise SendError(f"issue {campaign.issue_number} renders differently here than where "
                        f"campaign {campaign.id} started (edited file or different templates?); "
                        "not joining. Use the same files here, or stop the send and run "
                        f"`mailer send --issue {campaign.issue_number}` to go on with the new "
                        "version")


def join_campaign(db, campaign_id: int) -> Recovered:
    """Before a worker joins: give back the rows of workers that died."""
    return recovered(db, campaign_id, ledger.recover_abandoned(db, campaign_id))


# -- a test copy -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TestCopy:
    """One copy sent to ``address`` outside any campaign."""

    issue_number: int
    address: str
    provider_id: str


def send_test_copy(db, s, transport, rendered, address: str, number: int) -> TestCopy:
    """One copy to ``address`` outside any campaign; a subscriber's own links if it is one."""
    from mailer.dispatch import MessageComposer
    from mailer.store.db import session
    from mailer.store.subscribers import get_by_email, normalise_address

    clean = normalise_address(address)
    with session(db) as db_session:
        subscriber = get_by_email(db_session, clean)
    composer = MessageComposer(rendered, s, campaign_id="test", issue_number=number)
    message = composer.compose_test(clean, subscriber.id if subscriber else None)
    # Marked, as a preview is: in an editor's inbox it must not pass for the issue itself.
    provider_id = transport.send(dataclasses.replace(
        message, subject=TEST_SUBJECT_PREFIX + message.subject))
    return TestCopy(issue_number=number, address=clean, provider_id=provider_id)
