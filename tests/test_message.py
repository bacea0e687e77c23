"""MIME building: what a mail client (here the stdlib parser) reads back from our bytes."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.domain import OutgoingEmail
from mailer.errors import Rejected
from mailer.message import build_mime

HTML = "<!doctype html><html><body><h1>This Week in Rust 644</h1>" + (
    '<p style="font-family:sans-serif;color:#222">Crate of the week — “zerocopy” ✨ café</p>\n'
    * 900) + "</body></html>"
TEXT = "This Week in Rust 644\n\nCrate of the week: zerocopy\n" * 50


def make(**changes) -> OutgoingEmail:
    fields = dict(
        to="reader@example.com",
        sender="This Week in Rust <newsletter@example.org>",
        subject="This Week in Rust 644",
        html=HTML,
        text=TEXT,
        reply_to="editors@example.org",
        headers={
            "List-Unsubscribe": "<https://twir.example.org/unsubscribe/tok.abc>, "
                                "<mailto:unsubscribe@example.org?subject=tok.abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "This Week in Rust <newsletter.this-week-in-rust.example.org>",
            "Feedback-ID": "644:1:newsletter:twir",
            "X-Mailer-Delivery": "1-42",
        },
    )
    fields.update(changes)
    return OutgoingEmail(**fields)


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def body(message: email.message.EmailMessage, kind: str) -> str:
    return message.get_body((kind,)).get_content().replace("\r\n", "\n")


def test_message_is_multipart_alternative_with_text_first_then_html():
    parsed = parse(build_mime(make()).data)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert body(parsed, "html") == HTML
    assert body(parsed, "plain").rstrip("\n") == TEXT.rstrip("\n")


def test_every_header_survives_verbatim():
    original = make()
    parsed = parse(build_mime(original).data)
    for name, value in original.headers.items():
        assert parsed[name] == value
    assert parsed["From"] == "This Week in Rust <newsletter@example.org>"
    assert parsed["To"] == "reader@example.com"
    assert parsed["Reply-To"] == "editors@example.org"
    assert parsed["MIME-Version"] == "1.0"


def test_date_and_message_id_are_present_and_unique():
    first, second = build_mime(make()), build_mime(make())
    assert first.message_id != second.message_id
    assert first.message_id.startswith("<") and first.message_id.endswith("@example.org>")
    parsed = parse(first.data)
    assert parsed["Message-ID"] == first.message_id
    assert parsed["Date"].datetime.tzinfo is not None


def test_given_date_and_message_id_are_used():
    when = datetime(2026, 4, 23, 12, 0, tzinfo=UTC)
    built = build_mime(make(), message_id="<fixed@example.org>", date=when)
    parsed = parse(built.data)
    assert parsed["Message-ID"] == "<fixed@example.org>"
    assert parsed["Date"].datetime == when


def test_non_ascii_subject_and_names_are_rfc2047_encoded():
    built = build_mime(make(subject="Diese Woche in Rust — Ausgabe 644 ✨",
                            to="Jürgen Groß <juergen@example.com>",
                            sender="Ｔｈｉｓ Week <newsletter@example.org>"))
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    parsed = parse(built.data)
    assert parsed["Subject"] == "Diese Woche in Rust — Ausgabe 644 ✨"
    assert parsed["To"].addresses[0].display_name == "Jürgen Groß"
    assert parsed["To"].addresses[0].addr_spec == "juergen@example.com"
    assert parsed["From"].addresses[0].display_name == "Ｔｈｉｓ Week"
    assert built.recipient == "juergen@example.com"
    assert built.envelope_from == "newsletter@example.org"


def test_international_domain_goes_out_as_punycode():
    built = build_mime(make(to="leser@bücher.example"))
    assert built.recipient == "leser@xn--bcher-kva.example"
    assert parse(built.data)["To"] == "leser@xn--bcher-kva.example"


def test_no_line_exceeds_998_octets_even_with_a_huge_single_line_body():
    long_line = "<p>" + "x" * 50_000 + "</p>"  # ASCII, but far too long for 7bit
    data = build_mime(make(html=long_line, text="y" * 5000)).data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    parsed = parse(data)
    assert body(parsed, "html") == long_line
    assert body(parsed, "plain") == "y" * 5000


def test_lines_end_in_crlf_only():
    data = build_mime(make(text="one\ntwo\r\nthree\rfour")).data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert body(parse(data), "plain").split("\n")[:4] == ["one", "two", "three", "four"]


def test_a_body_containing_boundary_like_text_does_not_break_the_structure():
    nasty = "--=_0000\r\n--=_0000--\r\nContent-Type: text/evil\r\n\r\n"
    parsed = parse(build_mime(make(text=nasty, html=nasty + "é")).data)
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert body(parsed, "plain").startswith("--=_0000\n")


@pytest.mark.parametrize("field", ["to", "subject", "reply_to", "sender"])
def test_line_breaks_in_fields_are_refused_as_header_injection(field):
    value = {"to": "reader@example.com\r\nBcc: victim@example.net",
             "subject": "Hello\nBcc: victim@example.net",
             "reply_to": "a@example.org\rBcc: victim@example.net",
             "sender": "TWiR <n@example.org>\nBcc: victim@example.net"}[field]
    with pytest.raises(Rejected, match="line break"):
        build_mime(make(**{field: value}))


def test_line_breaks_in_extra_headers_are_refused():
    with pytest.raises(Rejected, match="List-Unsubscribe.*line break"):
        build_mime(make(headers={"List-Unsubscribe": "<https://x>\r\nBcc: victim@example.net"}))
    with pytest.raises(Rejected, match="List-Id"):
        build_mime(make(headers={"List-Id": "a\u2028b"}))


@pytest.mark.parametrize("name", ["Bad Name", "Colon:Name", "Ünicode", ""])
def test_malformed_header_names_are_refused(name):
    with pytest.raises(Rejected, match="header name"):
        build_mime(make(headers={name: "x"}))


@pytest.mark.parametrize("name", ["Content-Type", "to", "BCC", "MIME-Version"])
def test_headers_that_would_duplicate_structural_ones_are_refused(name):
    with pytest.raises(Rejected, match="built from the message fields"):
        build_mime(make(headers={name: "x"}))


@pytest.mark.parametrize("to", ["a@example.com, b@example.com", "not an address", "",
                                "üser@example.com"])
def test_to_must_be_exactly_one_plain_address(to):
    with pytest.raises(Rejected):
        build_mime(make(to=to))


def test_a_given_message_id_with_a_line_break_is_refused():
    with pytest.raises(Rejected, match="Message-ID"):
        build_mime(make(), message_id="<a@example.org>\r\nBcc: victim@example.net")


def test_extra_headers_may_set_a_stable_message_id():
    built = build_mime(make(headers={"Message-ID": "<delivery-42@example.org>"}))
    assert built.message_id == "<delivery-42@example.org>"
    assert parse(built.data).get_all("Message-ID") == ["<delivery-42@example.org>"]


def test_non_ascii_extra_header_values_are_encoded():
    parsed = parse(build_mime(make(headers={"List-Id": "Diese Woche <twir.example.org>"
                                                        " — ✨"})).data)
    assert parsed["List-Id"] == "Diese Woche <twir.example.org> — ✨"


def test_a_shared_body_and_a_personal_body_give_the_same_message():
    shared = make()
    personal = make(html="".join(HTML), text="".join(TEXT))  # equal text, other objects
    assert personal.html is not shared.html
    first, second = parse(build_mime(shared).data), parse(build_mime(personal).data)
    assert body(first, "html") == body(second, "html") == HTML


@settings(max_examples=60, deadline=None)
@given(subject=st.text(st.characters(blacklist_categories=("Cs",),
                                     blacklist_characters="\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85"
                                                          "\u2028\u2029"), max_size=200),
       text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000))
def test_any_subject_and_body_round_trip(subject, text):
    data = build_mime(make(subject=subject, text=text, html=text)).data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    parsed = parse(data)
    # A reader unfolds and trims blanks around a header value; nothing else may change.
    assert " ".join(parsed["Subject"].split()) == " ".join(subject.split())
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    assert body(parsed, "html").rstrip("\n") == normalised.rstrip("\n")
    assert body(parsed, "plain").rstrip("\n") == normalised.rstrip("\n")


def test_readers_copies_decode_to_their_own_bodies_when_the_shared_start_is_reused():
    """Bodies that share a long start (a newsletter with each reader's links at the end) reuse
    its encoding; each message must still decode to exactly its own text and HTML, and a
    reader whose link makes an over-long line gets base64 instead of a broken 7bit part."""
    shared_text = "Crab news 🦀 and more.\n" * 400
    shared_html = "<p>Crab news &#129408; and more.</p>\n" * 400
    for n in range(12):
        link = "https://example.org/unsubscribe/" + "t" * (n * 100)
        message = make(to=f"reader{n}@example.org", text=shared_text + f"Leave: {link}\n",
                       html=shared_html + f'<a href="{link}">leave</a>\n')
        parsed = email.message_from_bytes(build_mime(message).data, policy=email.policy.default)
        text = parsed.get_body(preferencelist=("plain",))
        html = parsed.get_body(preferencelist=("html",))
        assert text.get_content().replace("\r\n", "\n") == message.text
        assert html.get_content().replace("\r\n", "\n") == message.html
        long_line = len(f'<a href="{link}">leave</a>') > 998
        assert html["Content-Transfer-Encoding"] == ("base64" if long_line else "7bit")
        # never base64 beside a 7bit HTML part (rspamd scores that): readable quoted-printable
        assert text["Content-Transfer-Encoding"] == "quoted-printable"


def test_plain_text_beyond_ascii_goes_quoted_printable_in_short_lines():
    text = "Crate of the week — “zerocopy” ✨ café, with a trailing space \n" + "x" * 2000 + "\n"
    data = build_mime(make(text=text)).data
    parsed = parse(data)
    plain = parsed.get_body(preferencelist=("plain",))
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert plain.get_content().replace("\r\n", "\n") == text
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert b"Crate of the week =E2=80=94" in data  # readable in the raw source, unlike base64


@pytest.mark.parametrize("subject", [
    "ThisWeekInRust" + "_" * 1183 + "652",  # one 1,200-character word (security issue 19)
    "Crab news 🦀 and more " * 60,  # encoded words over 998 octets in all
])
def test_a_subject_too_long_for_one_line_folds_into_encoded_words(subject):
    data = build_mime(make(subject=subject)).data
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    parsed = parse(data)
    assert parsed["Subject"].strip() == subject.strip()
    assert parsed["Reply-To"] == "editors@example.org"  # the header block goes on after it


def test_a_title_becomes_one_header_line():
    from mailer.message import header_text

    assert header_text(" This Week\r\nin Rust\u2028651\x00\t") == "This Week in Rust 651"
