"""Transports hand one finished message to a mail system. They never touch the database.

``get_transport(settings)`` picks one by ``MAILER_TRANSPORT``: ``outbox`` (default, a local
Maildir: no mail leaves the machine), ``ses`` (Amazon SES v2 through boto3), ``smtp``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailer.errors import ConfigError
from mailer.transports.base import BatchTransport, Transport

if TYPE_CHECKING:
    from mailer.config import Settings

__all__ = ["BatchTransport", "Transport", "get_transport", "transport_notice"]

# Pooled connections beyond the dispatcher's workers, for preflight and heartbeat calls.
_SPARE_CONNECTIONS = 4


def get_transport(settings: Settings, *, max_connections: int | None = None) -> Transport:
    """The transport ``MAILER_TRANSPORT`` names, configured from settings (imports lazily, so
    the outbox never loads boto3)."""
    connections = max_connections or settings.send_concurrency + _SPARE_CONNECTIONS
    if settings.transport == "outbox":
        from mailer.transports.outbox import OutboxTransport

        return OutboxTransport(settings.outbox_dir)
    if settings.transport == "ses":
        from mailer.transports.ses import SesTransport

        return SesTransport(
            sender=settings.from_,
            region=settings.ses_region,
            configuration_set=settings.ses_configuration_set,
            endpoint_url=settings.ses_endpoint_url,
            max_connections=connections,
            bulk=settings.ses_bulk != "off",
        )
    if settings.transport == "smtp":
        from mailer.transports.smtp import SmtpTransport

        if not settings.smtp_url:
            raise ConfigError("MAILER_SMTP_URL is required when MAILER_TRANSPORT=smtp "
                              "(smtp://user:password@host:587 or smtps://...:465)")
        return SmtpTransport.from_url(settings.smtp_url, max_connections=connections)
    raise ConfigError(f"MAILER_TRANSPORT: unknown transport {settings.transport!r}")


def transport_notice(transport: Transport) -> str | None:
    """A one-line notice the CLI should print before sending (the outbox says no mail leaves)."""
    return getattr(transport, "notice", None)
