"""Every error mailer raises on purpose, in one tree.

A ``MailerError`` is a user-facing failure: the CLI prints its message on one line and exits
non-zero, the web app turns it into a 4xx page. Anything else is a bug and keeps its traceback.

    MailerError
    ├── ConfigError              a setting is missing or malformed (names the MAILER_* variable)
    ├── IssueError
    │   ├── IssueNotFound        no file in MAILER_ISSUES_DIR claims that number
    │   │   └── NotAnIssueNumber --issue is neither a number nor 'latest' (a usage mistake)
    │   ├── AmbiguousIssue       two files claim the same number
    │   ├── MalformedIssue       a header or a record that cannot be read
    │   └── SourceError          the issue source (git, feed, PDS) could not be reached or read
    ├── RenderError              the template or MJML failed to compile
    ├── SubscriberError
    │   ├── InvalidAddress       not a deliverable e-mail address
    │   ├── UnknownSubscriber    no such subscriber
    │   ├── SignupRefused        too many sign-ups right now: carries retry_after and paused
    │   ├── BadPause             a pause date out of range, or a reader who cannot pause
    │   ├── TransitionRefused    a status change the subscription workflow does not allow
    │   └── TokenError           a confirm / unsubscribe token that cannot be used
    │       ├── TokenInvalid     forged, truncated or for something else
    │       ├── TokenExpired     signed by us, but too old
    │       └── TokenUsed        single-use token already spent
    ├── StoreError
    │   └── DatabaseTooNew       the database was migrated by a newer mailer
    ├── SendError                a send cannot start or must stop (state is saved)
    ├── TransportError           a transport could not hand a message over (ses_code: SES's)
    │   ├── TemporaryFailure     network error or 5xx: retry with backoff
    │   │   └── Throttled        429 / SMTP 454: slow down, retry, nothing is lost
    │   ├── Rejected             permanent for this recipient: fail the row, go on
    │   └── AccountError         credentials, paused, suspended: stop the whole send
    │       └── QuotaExhausted   the 24-hour quota is used up: stop, resume later
    └── WebhookRejected          an SNS message we will not act on (forged, wrong topic, ...)
"""

from __future__ import annotations


class MailerError(Exception):
    """Base of every error meant for a user rather than a developer."""

    exit_code = 1


class ConfigError(MailerError):
    exit_code = 2


class IssueError(MailerError):
    pass


class IssueNotFound(IssueError):
    pass


class NotAnIssueNumber(IssueNotFound):
    """A usage mistake, so exit 2 as click's own (``--issue abc``)."""

    exit_code = 2


class AmbiguousIssue(IssueError):
    pass


class MalformedIssue(IssueError):
    pass


class SourceError(IssueError):
    """MAILER_ISSUE_SOURCE could not deliver the issue: nothing is rendered or sent."""


class RenderError(MailerError):
    pass


class SubscriberError(MailerError):
    pass


class InvalidAddress(SubscriberError):
    pass


class UnknownSubscriber(SubscriberError):
    pass


class SignupRefused(SubscriberError):
    """Too many sign-ups right now (one domain, or all together): try again later."""

    def __init__(self, message: str, retry_after: int, *, paused: bool) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, for the Retry-After header
        self.paused = paused  # the hourly cap, not one domain


class BadPause(SubscriberError):
    """The reader's pause cannot be set as asked (a past day, more than three months ahead)."""


class TransitionRefused(SubscriberError):
    """A reader cannot go from their status to the one asked for by that event and source
    (mailer.subscription_states): nothing changed."""


class AddressChangeRefused(SubscriberError):
    """A reader's change of address cannot be asked for or confirmed as it stands (the same
    address, a reader who gets no newsletter, a new address taken since): nothing changed."""


class TokenError(SubscriberError):
    pass


class TokenInvalid(TokenError):
    pass


class TokenExpired(TokenError):
    pass


class TokenUsed(TokenError):
    pass


class StoreError(MailerError):
    pass


class DatabaseTooNew(StoreError):
    pass


class SendError(MailerError):
    pass


class TransportError(MailerError):
    # SES's error code (or HTTP status) when SES answered with an error; None otherwise.
    ses_code: str | None = None


class TemporaryFailure(TransportError):
    pass


class Throttled(TemporaryFailure):
    pass


class Rejected(TransportError):
    pass


class AccountError(TransportError):
    pass


class QuotaExhausted(AccountError):
    pass


class WebhookRejected(MailerError):
    """Carries the HTTP status the web hook should answer with (always 4xx)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


# -- the answer was lost (issue 14) ------------------------------------------------------------

class AnswerLost(TransportError):
    """The request reached the provider, then its answer was lost (read timeout, connection
    closed or reset, SMTP connection lost after DATA): the message may or may not have been
    accepted. Never retried on its own: the row becomes ``unknown`` until an event settles it."""
