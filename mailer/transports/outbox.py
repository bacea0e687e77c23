"""The outbox transport: every message becomes a file in a local Maildir. No mail leaves.

Files are written the Maildir way (into ``tmp/``, then renamed into ``new/``) so a reader such as
``mailbox.Maildir`` or mutt never sees half a message. They hold personal unsubscribe links, so
they are readable by their owner only.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import time
from pathlib import Path

from mailer.domain import OutgoingEmail, SendQuota
from mailer.errors import AccountError, ConfigError
from mailer.message import build_mime

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).absolute()
        self._counter = itertools.count()  # next() on a count is atomic under the GIL
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self._ready = False

    @property
    def notice(self) -> str:
        return (f"outbox transport: messages are written to {self.directory}; "
                "no mail leaves this machine")

    def preflight(self) -> SendQuota | None:
        self._ensure_maildir()
        return None

    def send(self, message: OutgoingEmail) -> str:
        mime = build_mime(message)
        if not self._ready:
            self._ensure_maildir()
        # Local mail files use the platform's line ends, as every Maildir reader expects.
        self._deliver(mime.data.replace(b"\r\n", b"\n"))
        return mime.message_id

    def close(self) -> None:
        pass

    def _ensure_maildir(self) -> None:
        try:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            self.directory.mkdir(mode=_DIR_MODE, exist_ok=True)
            for sub in ("tmp", "new", "cur"):
                (self.directory / sub).mkdir(mode=_DIR_MODE, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"MAILER_OUTBOX_DIR: cannot create the Maildir {self.directory}: "
                              f"{error.strerror or error}") from None
        self._ready = True

    def _unique_name(self) -> str:
        now = time.time()
        seconds, micros = int(now), int((now % 1) * 1_000_000)
        return f"{seconds}.M{micros}P{os.getpid()}Q{next(self._counter)}.{self._host}"

    def _deliver(self, data: bytes) -> None:
        name = self._unique_name()
        tmp_path = self.directory / "tmp" / name
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.rename(tmp_path, self.directory / "new" / name)
        except OSError as error:
            tmp_path.unlink(missing_ok=True)
            # AccountError: the dispatcher stops the whole send (a full disk fails every row);
            # the OSError stays its cause, so the send can say the disk is full.
            if error.errno in _DISK_FULL:
                raise AccountError(f"disk full: cannot write to MAILER_OUTBOX_DIR "
                                   f"{self.directory} ({error.strerror}); free some space, "
                                   "then run the same command again") from error
            raise AccountError(f"MAILER_OUTBOX_DIR: cannot write to {self.directory}: "
                              f"{error.strerror or error}") from None
