"""The outbox transport writes a Maildir that mail readers (here ``mailbox.Maildir``) open."""

from __future__ import annotations

import mailbox
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailer.domain import OutgoingEmail
from mailer.errors import ConfigError, Rejected
from mailer.transports import get_transport, transport_notice
from mailer.transports.outbox import OutboxTransport


def message(n: int = 1, **changes) -> OutgoingEmail:
    fields = dict(to=f"reader{n}@example.com", sender="TWiR <newsletter@example.org>",
                  subject=f"This Week in Rust {n}", html=f"<p>hello {n} — ✨</p>",
                  text=f"hello {n}", headers={"List-Unsubscribe": f"<https://x.example/u/{n}>"})
    fields.update(changes)
    return OutgoingEmail(**fields)


def test_default_transport_is_the_outbox_and_says_no_mail_leaves(settings, tmp_path):
    transport = get_transport(settings)
    assert transport.name == "outbox"
    assert transport.preflight() is None
    notice = transport_notice(transport)
    assert notice == (f"outbox transport: messages are written to {tmp_path / 'outbox'}; "
                      "no mail leaves this machine")


def test_sent_messages_are_readable_with_mailbox_maildir(tmp_path):
    transport = OutboxTransport(tmp_path / "outbox")
    ids = [transport.send(message(n)) for n in range(3)]
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    read = sorted(box, key=lambda m: m["To"])
    assert [m["To"] for m in read] == ["reader0@example.com", "reader1@example.com",
                                       "reader2@example.com"]
    assert sorted(m["Message-ID"] for m in read) == sorted(ids)
    assert read[1]["List-Unsubscribe"] == "<https://x.example/u/1>"
    assert not list((tmp_path / "outbox" / "tmp").iterdir())  # nothing left half-written


def test_messages_are_private_to_their_owner(tmp_path):
    transport = OutboxTransport(tmp_path / "outbox")
    transport.send(message())
    (written,) = (tmp_path / "outbox" / "new").iterdir()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700


def test_many_threads_write_one_file_each(tmp_path):
    transport = OutboxTransport(tmp_path / "outbox")
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: transport.send(message(n)), range(200)))
    assert len(set(ids)) == 200
    assert len(mailbox.Maildir(tmp_path / "outbox", create=False)) == 200


def test_an_outbox_that_cannot_be_created_is_one_clear_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    transport = OutboxTransport(blocker / "outbox")
    with pytest.raises(ConfigError, match="MAILER_OUTBOX_DIR: cannot create the Maildir"):
        transport.preflight()


def test_a_refused_message_writes_nothing(tmp_path):
    transport = OutboxTransport(tmp_path / "outbox")
    transport.preflight()
    with pytest.raises(Rejected):
        transport.send(message(to="reader@example.com\r\nBcc: victim@example.net"))
    assert not list((tmp_path / "outbox" / "new").iterdir())
