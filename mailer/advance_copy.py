"""`mailer send --preview-to ADDRESS`: the editors' advance copy. The editors get each issue
once, as readers will, the first time a send run finds it, while the real send still waits for
``--not-before``. (Called "advance copy" in the code so it is never mistaken for `mailer
preview`, which renders an issue to files; the flag, the setting MAILER_PREVIEW_TO, the
``[Preview]`` subject and the ``issue_preview`` table keep their names.)

The copy is recorded in its own table (``issue_preview``), claimed before the mail leaves, so
overlapping cron runs send it once. It is not a campaign and has no delivery rows: stats never
count it. A preview that cannot be sent is released for the next run and never blocks the send.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.engine import Engine

from mailer.config import Settings
from mailer.dispatch import MessageComposer
from mailer.domain import Issue, OutgoingEmail
from mailer.errors import MailerError
from mailer.render import RenderedIssue, RenderOptions, render_issue
from mailer.store import advance_copies, ledger
from mailer.store.subscribers import normalise_address
from mailer.transports import get_transport
from mailer import wire

SUBJECT_PREFIX = "[Preview] "
PREVIEW_TAG = "preview"


def send_advance_copy_once(engine: Engine, settings: Settings, issue: Issue, address: str) -> str | None:
    """Mail ``issue`` to ``address`` unless it was previewed or sent before; a line to print."""
    editors = normalise_address(address)  # a mistyped address is a user error, raised at once
    number = issue.number
    if number is None:
        return "warning: the issue has no number, so no preview is sent"
    if ledger.latest_campaign(engine, number) is not None:
        return None  # readers are already getting it: a preview would come too late
    if not advance_copies.claim(engine, number, editors):
        return None  # previewed on an earlier run
    try:
        provider_id = _send(settings, advance_copy_message(render_issue(issue, RenderOptions.from_settings(settings)),
                                                      settings, editors))
    except MailerError as error:
        advance_copies.release(engine, number)
        return f"warning: preview of issue {number} to {editors} not sent ({error}); the next run tries again"
    advance_copies.mark_sent(engine, number, provider_id)
    return f"preview of issue {number} sent to {editors} (message id {provider_id})"


def advance_copy_message(rendered: RenderedIssue, settings: Settings, address: str) -> OutgoingEmail:
    """The readers' mail (links for no reader: the web app refuses them), marked as a preview."""
    number = rendered.issue.number or 0
    message = MessageComposer(rendered, settings, campaign_id=PREVIEW_TAG, issue_number=number).compose_test(address, None)
    return dataclasses.replace(message, subject=SUBJECT_PREFIX + message.subject,
                               headers={**message.headers, wire.PREVIEW_HEADER: f"issue {number}"},
                               tags={wire.CAMPAIGN_TAG: PREVIEW_TAG})


def _send(settings: Settings, message: OutgoingEmail) -> str:
    transport = get_transport(settings, max_connections=2)
    try:
        transport.preflight()
        return transport.send(message)
    finally:
        transport.close()
