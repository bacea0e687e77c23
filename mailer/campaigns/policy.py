"""May this issue be sent now, and to how many readers: the campaign policy of `mailer send`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time as day_time, timedelta

from mailer.campaigns.results import (
    AlreadySent, already_sent, campaign_size, id_of, remaining, unknown_count,
)
from mailer.domain import CampaignStatus
from mailer.errors import IssueError, SendError
from mailer.store import ledger
from mailer.store.models import Campaign

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 3600, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, option: str = "--not-before") -> timedelta:
    """``24h``, ``90m``, ``1.5d``, ``3600s``; a bare number means hours. ``option`` names the
    option the text came from in the error."""
    match = _DURATION.match(text or "")
    if not match:
        raise SendError(f"{option}: cannot read {text!r} as a duration (examples: 24h, 90m, 2d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def issue_moment(issue) -> datetime:
    """When the issue was published: its Date header with time, else midnight UTC of its date."""
    if issue.published_at is not None:
        moment = issue.published_at
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if issue.date is not None:
        return datetime.combine(issue.date, day_time(0, 0), tzinfo=UTC)
    raise IssueError(f"issue {issue.number} has no date, so --not-before cannot be applied")


def due_moment(issue, not_before: str) -> datetime | None:
    """When ``--not-before`` lets the issue go out, if that is still to come; else None."""
    due = issue_moment(issue) + parse_duration(not_before)
    return due if datetime.now(UTC) < due else None


@dataclass(frozen=True)
class SendFlags:
    """The choices of one `mailer send` that decide what happens to the issue's campaign."""

    to: str | None = None  # a test copy to this address, outside the campaign
    dry_run: bool = False
    again: bool = False
    resume: bool = False
    resend_unknown: bool = False
    # how long an unknown row waits for its SES event before it may be re-sent (issue 21 §1)
    settle_after: timedelta = timedelta(minutes=15)

    @property
    def for_real(self) -> bool:
        """A send to the campaign's readers (not a test copy, not a dry run)."""
        return not self.to and not self.dry_run


def reads_shipped_examples(s) -> bool:
    """Issues come from the example folder shipped with mailer because nothing else was set:
    the ``folder`` source with no MAILER_ISSUES_DIR (a deliberate one counts as a choice)."""
    return s.issue_source == "folder" and "issues_dir" not in s.model_fields_set


def refuse_sample_issue(s, flags: SendFlags) -> None:
    """A send to the readers through a real transport never mails the shipped sample issue: on
    an installed copy with no issue source set, the hourly ``send --issue latest`` timer would
    send it to everyone. The outbox (``make demo``), ``--dry-run`` and ``--to`` stay allowed."""
    if flags.for_real and s.transport != "outbox" and reads_shipped_examples(s):
        raise SendError(f"refusing to send the sample issue shipped with mailer to every reader "
                        f"through {s.transport}: set MAILER_ISSUES_DIR to your issues folder (or "
                        "MAILER_ISSUE_SOURCE to git, feed or atproto)")


@dataclass(frozen=True)
class Standing:
    """Where the issue's latest campaign stands before anything is sent."""

    last: Campaign | None
    already: AlreadySent | None = None  # finished: nothing to do without --again
    paused: bool = False  # the breaker paused it: only --resume goes on


def standing(db, number: int, flags: SendFlags) -> Standing:
    """The issue's latest campaign, judged against the flags; a flag that cannot apply to it
    (``--again`` on a campaign still open) is a :class:`SendError`."""
    last = ledger.latest_campaign(db, number)
    judged = not flags.to  # a dry run stops where the real run would
    if (judged and not flags.again and last is not None
            and last.status == CampaignStatus.FINISHED
            and not (flags.resend_unknown and unknown_count(db, id_of(last)))
            and not settle_due(db, id_of(last), flags)):
        return Standing(last, already=already_sent(db, last))
    if (last is not None and last.status == CampaignStatus.PAUSED and not flags.resume
            and judged):
        return Standing(last, paused=True)
    if flags.again and not flags.to and last is not None \
            and last.status != CampaignStatus.FINISHED:
        # --again starts a new campaign for everyone; an unfinished one would be resumed
        # instead, and the plan would not match what is sent.
        raise SendError(f"--again: campaign {last.id} of issue {number} is {last.status}, not "
                        f"finished ({remaining(db, id_of(last), False)} readers still waiting); "
                        f"run `mailer send --issue {number}` without --again to resume it")
    return Standing(last)


@dataclass(frozen=True)
class SendPlan:
    audience: int  # readers this send would mail
    resuming: bool  # going on with an open campaign rather than starting one
    campaign_id: int | None = None  # the campaign resumed
    size: int = 0  # readers the resumed campaign was started for
    pauses: str | None = None  # the breaker would pause the resumed campaign at once: why

    @property
    def new_campaign(self) -> bool:
        return not self.resuming


def plan_send(db, s, last: Campaign | None, flags: SendFlags) -> SendPlan:
    """Who gets the issue: the readers an open campaign still owes, or every confirmed one."""
    open_campaign = last if last is not None and last.status != CampaignStatus.FINISHED else None
    due = (settle_due(db, id_of(last), flags)
           if last is not None and not flags.resend_unknown else 0)
    if last is not None and last.status == CampaignStatus.FINISHED and (
            flags.resend_unknown or due):
        open_campaign = last
    if open_campaign is None or flags.again:  # not resuming
        return SendPlan(audience=ledger.audience_size(db), resuming=False)
    resumed = id_of(open_campaign)
    size = campaign_size(db, resumed)
    return SendPlan(audience=remaining(db, resumed, flags.resend_unknown) + due,
                    resuming=True, campaign_id=resumed, size=size,
                    pauses=breaker_verdict(db, s, open_campaign, size))


def settle_due(db, campaign_id: int, flags: SendFlags) -> int:
    """Unknown rows the settle rule re-sends now (counted; :func:`start_send` decides)."""
    if flags.again or not unknown_count(db, campaign_id):
        return 0
    return ledger.settle_unknown(db, campaign_id, flags.settle_after, requeue=False).requeued


def breaker_verdict(db, s, campaign: Campaign, size: int) -> str | None:
    """Why the breaker would pause ``campaign`` before a run's first message (None: it holds):
    the rule and figures the dispatcher checks (``Dispatcher.check_reputation``), for a dry run
    to say what the real run will do."""
    from mailer.breaker import Thresholds

    figures = ledger.reputation(db, id_of(campaign)).since(ledger.breaker_baseline(campaign))
    return Thresholds.from_settings(s).for_campaign(size).crossed(figures)
