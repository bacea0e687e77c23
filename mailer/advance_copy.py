"""`mailer send --preview-to ADDRESS`: the editors' advance copy. The editors get each issue
once, as readers will, the first time a send run finds it, while the real send still waits for
``--not-before``. (Called "advance copy" in the code so it is never mistaken for `mailer
preview`, which renders an issue to files; the flag, the setting MAILER_PREVIEW_TO, the
``[Preview]`` subject and the ``issue_preview`` table keep their names.)

The copy is recorded in its own table (``issue_preview``), claimed before the mail leaves, so
overlapping cron runs send it once. It is not a campaign and has no delivery rows: stats never
count it. A preview that cannot be sent is released for the next run and never blocks the send.
Issue 25 §2: the copy carries two signed links, **Hold the send** (``/hold/<token>``) and **Open
the preview page** (``/preview/<token>``), bound to the issue and the editors' address and valid
until a while after the planned send. A held issue is sent by no `mailer send` until released
(:mod:`mailer.store.issue_timeline`). When the issue renders differently from the version the
editors saw (a fix merged), the next run mails them a correction, and the send uses that version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from sqlalchemy.engine import Engine

from mailer.config import Settings
from mailer.dispatch import MessageComposer
from mailer.domain import Issue, OutgoingEmail
from mailer.errors import MailerError
from mailer.render import RenderedIssue, RenderOptions, render_issue
from mailer.domain import DeliveryStatus
from mailer.store import advance_copies, issue_timeline, ledger
from mailer.store.subscribers import normalise_address
from mailer.transports import get_transport
from mailer import wire
from mailer.tokens import make_issue_token, read_issue_token

SUBJECT_PREFIX = "[Preview] "
CORRECTION_PREFIX = "[Correction] "  # before SUBJECT_PREFIX: the editors see it first
PREVIEW_TAG = "preview"
# The links stay valid this long after the planned send: an editor may still open the page
# the morning after, and a hold after the send started only says it is too late.
LINK_GRACE = timedelta(days=2)


@dataclass(frozen=True)
class Links:
    hold: str
    page: str


def send_advance_copy_once(engine: Engine, settings: Settings, issue: Issue, address: str,
                           planned_send_at: datetime | None = None) -> str | None:
    """Mail ``issue`` to ``address`` unless it was previewed or sent before, or its correction
    when it changed since the preview; a line to print. ``planned_send_at``: when the readers'
    send is due (None: on this very run)."""
    editors = normalise_address(address)  # a mistyped address is a user error, raised at once
    number = issue.number
    if number is None:
        return "warning: the issue has no number, so no preview is sent"
    if ledger.latest_campaign(engine, number) is not None:
        return None  # readers are already getting it: a preview would come too late
    rendered = render_issue(issue, RenderOptions.from_settings(settings))
    version = rendered_version(rendered)
    issue_timeline.record_found_once(engine, number, _planned_text(planned_send_at))
    previous = advance_copies.get(engine, number)
    if previous is None:
        if not advance_copies.claim(engine, number, editors, version, planned_send_at):
            return None  # another run claimed it a moment ago
        return _mail_preview(engine, settings, rendered, editors, planned_send_at)
    if _changed_since(previous, version) and advance_copies.claim_correction(
            engine, number, previous.content_sha256 or "", version):
        return _mail_correction(engine, settings, rendered, editors, planned_send_at,
                                seen=previous.content_sha256 or "")
    return None  # previewed on an earlier run, and unchanged since


def rendered_version(rendered: RenderedIssue) -> str:
    """The version of a rendered issue, as a campaign records it (``content_sha256``)."""
    return hashlib.sha256(rendered.html.encode("utf-8")).hexdigest()


def _changed_since(previous, version: str) -> bool:
    # A preview recorded before versions were (migration 0010) is not compared: nothing to
    # compare with, and a correction of an unknown change would only puzzle the editors.
    return (previous.status == DeliveryStatus.SENT.value and previous.content_sha256 is not None
            and previous.content_sha256 != version)


def _mail_preview(engine: Engine, settings: Settings, rendered: RenderedIssue, editors: str,
                  planned: datetime | None) -> str:
    number = rendered.issue.number or 0
    try:
        provider_id = _send(settings, advance_copy_message(rendered, settings, editors, planned))
    except MailerError as error:
        advance_copies.release(engine, number)
        return f"warning: preview of issue {number} to {editors} not sent ({error}); the next run tries again"
    advance_copies.mark_sent(engine, number, provider_id)
    issue_timeline.record(engine, number, issue_timeline.PREVIEW, editors)
    return f"preview of issue {number} sent to {editors} (message id {provider_id})"


def _mail_correction(engine: Engine, settings: Settings, rendered: RenderedIssue, editors: str,
                     planned: datetime | None, *, seen: str) -> str:
    number = rendered.issue.number or 0
    message = advance_copy_message(rendered, settings, editors, planned, correction=True)
    try:
        provider_id = _send(settings, message)
    except MailerError as error:
        advance_copies.unclaim_correction(engine, number, seen)
        return (f"warning: correction of issue {number}'s preview to {editors} not sent "
                f"({error}); the next run tries again")
    advance_copies.mark_sent(engine, number, provider_id)
    issue_timeline.record(engine, number, issue_timeline.CORRECTION, editors,
                          "the issue changed since the preview")
    return (f"correction of issue {number}'s preview sent to {editors} (message id "
            f"{provider_id}): the issue changed since the editors saw it; the send uses the new version")


def advance_copy_message(rendered: RenderedIssue, settings: Settings, address: str,
                         planned: datetime | None = None, *, correction: bool = False) -> OutgoingEmail:
    """The readers' mail (links for no reader: the web app refuses them), marked as a preview,
    with the editors' Hold and preview-page links on top."""
    number = rendered.issue.number or 0
    message = MessageComposer(rendered, settings, campaign_id=PREVIEW_TAG, issue_number=number).compose_test(address, None)
    links = editor_links(settings, number, address, planned)
    prefix = (CORRECTION_PREFIX if correction else "") + SUBJECT_PREFIX
    mark = f"issue {number}" + (" correction" if correction else "")
    return dataclasses.replace(message, subject=prefix + message.subject,
                               html=_with_links_html(message.html, links, planned, correction),
                               text=_with_links_text(message.text, links, planned, correction),
                               headers={**message.headers, wire.PREVIEW_HEADER: mark},
                               tags={wire.CAMPAIGN_TAG: PREVIEW_TAG})


def editor_links(settings: Settings, number: int, address: str, planned: datetime | None) -> Links:
    expires = int(((planned or datetime.now(UTC)) + LINK_GRACE).timestamp())
    base = settings.base_url.rstrip("/")

    def link(path: str, purpose: str) -> str:
        return f"{base}{path}/{make_issue_token(settings.secret_key, purpose, number, address, expires)}"

    return Links(hold=link(wire.HOLD_PATH, "hold"), page=link(wire.PREVIEW_PAGE_PATH, "preview"))


def _planned_text(planned: datetime | None) -> str:
    if planned is None:
        return "send due on the run that found it"
    return f"planned send {planned:%Y-%m-%d %H:%M} UTC"


def _intro(planned: datetime | None, correction: bool) -> str:
    first = ("Correction: the issue changed since your preview; readers get this version. "
             if correction else "")
    when = (f"Readers get it after {planned:%Y-%m-%d %H:%M} UTC." if planned is not None
            else "Readers get it on this run.")
    return first + when


_BODY_OPEN = re.compile(r"<body[^>]*>", re.IGNORECASE)


def _with_links_html(html: str, links: Links, planned: datetime | None, correction: bool) -> str:
    block = (
        '<div data-editor-links style="padding:12px 16px;margin:0 0 8px;border:2px solid #a4160b;'
        'font:15px/1.5 sans-serif">'
        f"<p style=\"margin:0 0 8px\">{escape(_intro(planned, correction))}</p>"
        f'<p style="margin:0"><a href="{escape(links.hold)}" style="color:#a4160b;font-weight:bold">'
        "Hold the send</a> &middot; "
        f'<a href="{escape(links.page)}">Open the preview page</a></p></div>'
    )
    match = _BODY_OPEN.search(html)
    if match is None:
        return block + html
    return html[:match.end()] + block + html[match.end():]


def _with_links_text(text: str, links: Links, planned: datetime | None, correction: bool) -> str:
    return (f"{_intro(planned, correction)}\nHold the send: {links.hold}\n"
            f"Open the preview page: {links.page}\n\n{text}")
def _send(settings: Settings, message: OutgoingEmail) -> str:
    transport = get_transport(settings, max_connections=2)
    try:
        transport.preflight()
        return transport.send(message)
    finally:
        transport.close()


# -- the editors' links, followed (the web app's /hold and /preview pages) ----------------------

@dataclass(frozen=True)
class IssueLinkView:
    """What the hold and preview pages show: the issue, its planned send and where it stands."""

    issue_number: int
    editor: str
    planned_send_at: datetime | None
    hold: issue_timeline.Hold | None
    send_started: bool  # a campaign exists: a hold would come too late
    just_held: bool = False


def read_issue_link(engine: Engine, settings: Settings, token: str, purpose: str) -> IssueLinkView:
    """The view a valid link leads to; TokenInvalid or TokenExpired (the page's 4xx) else."""
    number, editor = read_issue_token(settings.secret_key, token, purpose, datetime.now(UTC).timestamp())
    return _view(engine, number, editor)


def hold_from_link(engine: Engine, settings: Settings, token: str) -> IssueLinkView:
    """The Hold button's POST: hold the readers' send unless it started already."""
    view = read_issue_link(engine, settings, token, "hold")
    if view.send_started:
        return view
    _hold, made = issue_timeline.hold(engine, view.issue_number, view.editor)
    return dataclasses.replace(_view(engine, view.issue_number, view.editor), just_held=made)


def _view(engine: Engine, number: int, editor: str) -> IssueLinkView:
    preview = advance_copies.get(engine, number)
    return IssueLinkView(issue_number=number, editor=editor,
                         planned_send_at=preview.planned_send_at if preview else None,
                         hold=issue_timeline.hold_of(engine, number),
                         send_started=ledger.latest_campaign(engine, number) is not None)


def mail_html_for_page(settings: Settings, number: int, editor: str) -> str:
    """The HTML part readers would get now, with links for no reader (as the preview mail)."""
    rendered = rendered_for_page(settings, number)
    return MessageComposer(rendered, settings, campaign_id=PREVIEW_TAG,
                           issue_number=number).compose_test(editor, None).html


def rendered_for_page(settings: Settings, number: int) -> RenderedIssue:
    """The issue as the readers would get it now (its current version, as the send uses)."""
    from mailer.sources import load_issue_from_source

    return render_issue(load_issue_from_source(settings, number), RenderOptions.from_settings(settings))
