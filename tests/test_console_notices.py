"""A paused or stopped send on the console's overview and issue page (issue 20, item 20): why
it stopped, the figures the reputation breaker saw, and exactly which command goes on."""

from __future__ import annotations

import re
import pytest

from tests.console_seed import (
    BREAKER_REASON,
    STOP_REASON,
    add_paused_campaign,
    build_console_data,
)
from tests.web_clients import ADMIN_ENV, PASSWORD, USER, admin_client, basic_auth

AUTH = basic_auth(USER, PASSWORD)


@pytest.fixture
def console(mailer_env, engine, monkeypatch):
    build_console_data(engine)
    return admin_client(monkeypatch, ADMIN_ENV)


def _notice(page: str, issue: int) -> str:
    found = re.search(rf'<li[^>]*data-notice="{issue}"[^>]*>(.*?)</li>', page, re.S)
    assert found, f"no notice for issue {issue}"
    return re.sub(r"<[^>]+>", "", found.group(1))


@pytest.mark.parametrize("path", ["/admin", "/admin/issues/647"])
def test_a_paused_send_says_why_and_what_to_run(console, engine, path):
    add_paused_campaign(engine)
    notice = _notice(console.get(path, headers=AUTH).text, 647)
    assert "reputation breaker" in notice and BREAKER_REASON in notice
    assert "600 sent, 570 delivered, 30 hard bounces, 0 complaints" in notice
    assert "mailer stats --issue 647" in notice
    assert "mailer send --issue 647 --resume" in notice


@pytest.mark.parametrize("path", ["/admin", "/admin/issues/645"])
def test_a_stopped_send_says_what_resumes_it(console, path):
    notice = _notice(console.get(path, headers=AUTH).text, 645)
    assert STOP_REASON in notice
    assert "mailer send --issue 645" in notice and "--resume" not in notice
    # its row in doubt is not re-sent by resuming: the notice names the flag that would
    assert "mailer send --issue 645 --resend-unknown" in notice
