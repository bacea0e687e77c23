"""The operator console at ``/admin``: overview, issues, readers and events.

Every page sits behind ``admin.require_operator``; every write is a POST guarded by
``render.check_write``.
"""

from __future__ import annotations

from fastapi import APIRouter

from mailer.web.console import issue_hold, overview, readers

router = APIRouter(include_in_schema=False)
router.include_router(overview.router)
router.include_router(readers.router)
router.include_router(issue_hold.router)

__all__ = ["router"]
