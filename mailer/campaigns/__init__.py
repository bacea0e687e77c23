"""The send as one use case, between the entry points and the joiners (issues 10, 22).

`mailer send` calls :func:`send`, `mailer worker` calls :func:`join`; each runs the whole
workflow and returns what it ended with, asking the entry point (a :class:`SendUI`) only for
what needs the operator. Nothing here prints. The modules follow a send's life:

- ``workflow``: the two entries, the interface they depend on, what they end with;
- ``policy``: may this issue be sent now, and to how many readers (already finished,
  ``--not-before``, ``--again``, ``--resume``, ``--resend-unknown``);
- ``start``: open the transport, start or resume the campaign, join one from another machine,
  send a test copy;
- ``run``: the dispatcher for one run of a campaign, and the canary's size, wait and verdict;
- ``results``: what a campaign holds now: the summary, "already sent", a watch's figures.
"""

from mailer.campaigns.policy import SendFlags, SendPlan, refuse_sample_issue
from mailer.campaigns.results import (
    AlreadySent, Look, Outcome, Recovered, get_campaign, look, settling,
)
from mailer.campaigns.run import CanaryWait, canary_size
from mailer.campaigns.start import Pace, Started, TestCopy
from mailer.campaigns.workflow import (
    Declined, DryRun, DryRunTestCopy, Held, JoinRequest, JoinResult, NoReaders, NotDue, NothingToJoin,
    Paused, SendRequest, SendResult, SendUI, join, planned_send, send,
)

__all__ = [
    # the entries and the interface they depend on
    "JoinRequest", "SendFlags", "SendRequest", "SendUI", "join", "send",
    # what they end with
    "AlreadySent", "Declined", "DryRun", "DryRunTestCopy", "Held", "JoinResult", "NoReaders", "NotDue",
    "NothingToJoin", "Outcome", "Paused", "SendResult", "TestCopy",
    # what they tell the interface on the way
    "CanaryWait", "Pace", "Recovered", "SendPlan", "Started",
    # flag checks and reads for the entry points
    "Look", "canary_size", "get_campaign", "look", "planned_send", "refuse_sample_issue", "settling",
]
