"""What SpamAssassin's local rules make of a real send (issue 24.6).

`mailer send` writes the issue to the outbox exactly as it would hand it to SES, headers and
both parts included; Debian's `spamassassin` (installed by .ci/run) scores each message with
its local rules only (``-L``: no DNS blocklists, no network), and the template must stay well
under the 5.0 a default install refuses: at most 1.0. Skipped when spamassassin is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mailer_cli import mailer

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ISSUES = {644: ROOT / "examples", 902: ROOT / "tests" / "fixtures" / "render"}
MAX_SCORE = 1.0
STATUS = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=(.*?)"
                    r"(?: autolearn=| version=)", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def spamassassin() -> str:
    path = shutil.which("spamassassin")
    if not path:
        pytest.skip("spamassassin is not installed (apt-get install spamassassin)")
    return path


def sent_message(env: dict, number: int) -> bytes:
    """The one message `mailer send --issue N` puts in the outbox for one reader."""
    env = {**env, "MAILER_ISSUES_DIR": str(ISSUES[number])}
    for args in (("db", "upgrade"), ("subscribers", "add", "reader@example.org", "--confirmed"),
                 ("send", "--issue", str(number), "--yes")):
        result = mailer(env, *args)
        assert result.returncode == 0, result.stderr
    (path,) = (Path(env["MAILER_OUTBOX_DIR"]) / "new").iterdir()
    return path.read_bytes()


def score(spamassassin: str, message: bytes, home: Path) -> tuple[float, list[str]]:
    """SpamAssassin's score and the rules that hit, local rules only, learning nothing."""
    home.mkdir(exist_ok=True)
    result = subprocess.run(
        [spamassassin, "-L", "-t", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0",
         f"--prefspath={home / 'user_prefs'}"],
        input=message, capture_output=True, timeout=240, env={**os.environ, "HOME": str(home)})
    status = STATUS.search(result.stdout.decode("utf-8", "replace"))
    assert status, result.stderr.decode("utf-8", "replace")[-500:]
    return float(status[1]), status[2].replace(",", " ").split()


@pytest.mark.parametrize("number", sorted(ISSUES))
def test_a_sent_issue_scores_at_most_one_point(spamassassin, mailer_env, tmp_path, number):
    message = sent_message(mailer_env, number)
    assert b"\nList-Unsubscribe: " in message  # the headers of a real send are in it
    points, rules = score(spamassassin, message, tmp_path / "home")
    assert points <= MAX_SCORE, f"issue {number}: {points} points from {rules}"


def test_counted_links_score_the_same_as_links_as_written(spamassassin, mailer_env, tmp_path):
    """Issue 25 §1: rewriting every link to the newsletter's own counter (MAILER_CLICK_COUNTS)
    leaves SpamAssassin's score as it was. BASE_URL is a name, as in production: a bare IP
    address there would be a numeric-URL link to any filter."""
    env = {**mailer_env, "MAILER_BASE_URL": "https://newsletter.example.org"}
    as_written = sent_message({**env, "MAILER_OUTBOX_DIR": str(tmp_path / "off")}, 644)
    counted = sent_message({**env, "MAILER_OUTBOX_DIR": str(tmp_path / "on"),
                            "MAILER_DATABASE_URL": f"sqlite:///{tmp_path / 'on.db'}",
                            "MAILER_CLICK_COUNTS": "on"}, 644)
    assert b"newsletter.example.org/l/644/" in counted.replace(b"=\r\n", b"")
    off, off_rules = score(spamassassin, as_written, tmp_path / "home-off")
    on, on_rules = score(spamassassin, counted, tmp_path / "home-on")
    assert on <= off, f"counted links: {on} points from {on_rules}; as written {off} from {off_rules}"
