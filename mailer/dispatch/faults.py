"""Errors no send goes on after, told apart from bugs: a full disk (the outbox's, or the
database's) and a database that cannot be written (the ledger tells those:
``Lease.store_failure``). Each stops the send with one line, every reader not yet sent still
queued; anything else unexpected keeps its traceback."""

from __future__ import annotations

import errno

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full


def disk_full(error: BaseException | None) -> bool:
    """``error``, or an error that caused it, says the disk is full."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        original = getattr(error, "orig", None)
        if getattr(original, "sqlite_errorname", "") == "SQLITE_FULL" \
                or getattr(original, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        error = error.__cause__
    return False
