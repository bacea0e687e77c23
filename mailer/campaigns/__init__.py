"""The use cases of a send, between the entry points and the joiners (issue 10).

`mailer send` and `mailer worker` parse their input, call these and present what comes back;
nothing here prints. The modules follow a send's life:

- ``policy``: may this issue be sent now, and to how many readers (already finished,
  ``--not-before``, ``--again``, ``--resume``, ``--resend-unknown``);
- ``start``: open the transport, start or resume the campaign, join one from another machine,
  send a test copy;
- ``run``: the dispatcher for one run of a campaign, and the canary's wait and verdict;
- ``results``: what a campaign holds now: the summary, "already sent", a watch's figures.
"""

from mailer.campaigns.policy import (
    SendFlags, SendPlan, Standing, due_moment, issue_moment, parse_duration, plan_send,
    refuse_sample_issue, standing,
)
from mailer.campaigns.results import (
    AlreadySent, Look, Outcome, already_sent, finish_send, get_campaign, look, recovered,
    remaining, settling,
)
from mailer.campaigns.run import (
    CanaryWait,
    SendJob,
    canary_phase,
    canary_undecided,
    new_dispatcher,
)
from mailer.campaigns.start import (
    Pace, Recovered, Started, TestCopy, check_message, check_same_version, choose_pace, choose_threads,
    join_campaign, mail_destination, open_transport, pick_open_campaign, send_test_copy,
    start_send,
)

__all__ = [
    "AlreadySent", "CanaryWait", "Look", "Outcome", "Recovered", "SendFlags", "SendJob",
    "SendPlan", "Standing", "Started", "TestCopy", "already_sent", "canary_phase", "canary_undecided",
    "Pace", "check_message", "check_same_version", "choose_pace", "choose_threads", "pick_open_campaign", "due_moment", "finish_send", "get_campaign",
    "issue_moment", "join_campaign", "look", "mail_destination", "new_dispatcher",
    "open_transport", "parse_duration", "plan_send", "recovered",
    "refuse_sample_issue", "remaining",
    "send_test_copy", "settling", "standing", "start_send",
]
