"""One doctor check's verdict, and the guard that keeps an AWS error from becoming a traceback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError

from mailer.transports.ses_reads import reason

Status = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str


def guarded(name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; an unexpected AWS error becomes that check's FAIL, not a traceback."""
    try:
        result = check()
    except (ClientError, BotoCoreError) as error:
        return [Check(name, "FAIL", f"could not check: {reason(error)}")]
    return result if isinstance(result, list) else [result]
