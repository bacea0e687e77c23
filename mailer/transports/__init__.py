"""Transports hand one finished message to a mail system. They never touch the database.

``get_transport(settings)`` picks one by ``MAILER_TRANSPORT``: ``outbox`` (default, a local
Maildir: no mail leaves the machine), ``ses`` (Amazon SES v2 through boto3), ``smtp``.
"""
