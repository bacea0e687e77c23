"""OutgoingEmail → RFC 5322 / MIME bytes (pure: no network, no database).

The result is ``multipart/alternative`` (text/plain, then text/html), UTF-8, with CRLF line
endings and no line longer than 998 octets, ready for SES ``Raw``, SMTP ``DATA`` or a Maildir.

Speed matters: a send builds one message per recipient of a ~70 KB HTML body. So the message is
assembled from bytes rather than through ``email.message``: each body part is encoded once per
distinct body (a small cache keyed by the body text), as ``7bit`` when it is ASCII with short
lines (free, and readable in the raw source) and as ``base64`` otherwise (the cheapest safe
encoding in CPython; plain text that is not ASCII goes as quoted-printable, readable and not
scored by spam filters beside a 7bit HTML part). The boundary starts with ``=_``, a sequence no
encoding here can produce.

Header values are checked for line breaks (header injection: a subscriber address such as
``a@example.org\\r\\nBcc: ...`` must not add a header) and non-ASCII values are RFC 2047 encoded,
as is a Subject with a word too long for one line (``header_text`` makes a title one line).
Every refusal is a :class:`~mailer.errors.Rejected`: permanent for this message, nothing sent.
"""

from __future__ import annotations

import binascii
import os
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, getaddresses
from collections.abc import Callable
from functools import lru_cache

from mailer.domain import OutgoingEmail, utcnow
from mailer.errors import Rejected

MAX_LINE = 998  # octets, without the CRLF (RFC 5322 2.1.1)
BASE64_LINE = 76  # RFC 2045 6.8

# Anything str.splitlines() or a mail parser could treat as the end of a header line.
_LINE_BREAKS = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_HEADER_NAME = re.compile(r"[!-9;-~]+\Z")  # printable ASCII except ":" (RFC 5322 2.2)
# What may go into a header unencoded: printable ASCII and blanks, and no "=?" that a reader
# would decode as an RFC 2047 encoded word.
_NEEDS_ENCODING = re.compile(r"[^\t\x20-\x7e]|=\?")
# A word longer than RFC 5322's recommended 78-character line: in an unstructured header such
# as Subject it goes out as encoded words, which fold anywhere (a title can be one long word).
_LONG_WORD = re.compile(r"[^\t ]{78}")
# Line breaks and other controls in a text that becomes a header line (an issue's title).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")

# Headers built from OutgoingEmail fields or by this module; ``message.headers`` may override
# only Date and Message-ID (a caller may want a stable Message-ID per delivery).
_OVERRIDABLE = {"date", "message-id"}
_RESERVED = {
    "from", "to", "subject", "reply-to", "mime-version", "content-type",
    "content-transfer-encoding", "cc", "bcc",
}


@dataclass(frozen=True)
class Mime:
    """A built message: its bytes, its Message-ID and the envelope addresses (bare addr-specs)."""

    data: bytes
    message_id: str
    envelope_from: str
    recipient: str


def build_mime(
    message: OutgoingEmail, *, message_id: str | None = None, date: datetime | None = None
) -> Mime:
    """Build the whole message for one recipient. Raises Rejected for input that cannot go out."""
    from_header, sender_addr = _address_header("From", message.sender)
    to_header, recipient = _address_header("To", message.to)
    overrides, extra = _custom_headers(message.headers)
    message_id = overrides.get("message-id") or message_id or new_message_id(sender_addr)
    _refuse_line_breaks("Message-ID", message_id)
    date_value = overrides.get("date") or (format_datetime(date) if date else _date_now())
    boundary = "=_" + os.urandom(12).hex()

    lines = [
        from_header,
        to_header,
        _header_line("Subject", _encode_subject(message.subject)),
    ]
    if message.reply_to:
        lines.append(_address_header("Reply-To", message.reply_to)[0])
    lines += [
        _header_line("Date", date_value),
        _header_line("Message-ID", message_id),
        b"MIME-Version: 1.0",
    ]
    lines += [_header_line(name, value) for name, value in extra]
    lines.append(b'Content-Type: multipart/alternative; boundary="' + boundary.encode() + b'"')
    head = b"\r\n".join(lines) + b"\r\n\r\n"

    delimiter = b"--" + boundary.encode() + b"\r\n"
    data = b"".join((
        head,
        delimiter, _encoded_part(message.text, "plain"),
        delimiter, _encoded_part(message.html, "html"),
        b"--", boundary.encode(), b"--\r\n",
    ))
    return Mime(data=data, message_id=message_id, envelope_from=sender_addr, recipient=recipient)


def _date_now() -> str:
    """The Date header for now; formatted once a second, not once a message."""
    global _date_cache
    now = utcnow().replace(microsecond=0)
    stamp, text = _date_cache
    if stamp != now:
        text = format_datetime(now)
        _date_cache = (now, text)  # one tuple: threads never see half an update
    return text


_date_cache: tuple[datetime | None, str] = (None, "")


def new_message_id(sender_address: str) -> str:
    """A globally unique Message-ID in the sender's domain."""
    domain = sender_address.rpartition("@")[2] or "localhost"
    return f"<{uuid.uuid4().hex}@{domain}>"


# -- addresses ---------------------------------------------------------------------------------


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\Z")


def _address_header(field: str, value: str) -> tuple[bytes, str]:
    """The whole header line for one mailbox, and its bare addr-spec for the envelope."""
    if _PLAIN_ADDRESS.match(value):  # the common case for To: no parsing, nothing to encode
        return f"{field}: {value}".encode("ascii"), value
    return _parsed_address_header(field, value)


@lru_cache(maxsize=64)  # From and Reply-To repeat for every message of a send
def _parsed_address_header(field: str, value: str) -> tuple[bytes, str]:
    name, addr = _single_address(field, value)
    return _header_line(field, _format_address(name, addr)), addr


def _single_address(field: str, value: str) -> tuple[str, str]:
    """(display name, addr-spec) for a header that must name exactly one mailbox."""
    _refuse_line_breaks(field, value)
    parsed = getaddresses([value])
    if len(parsed) != 1 or "@" not in parsed[0][1]:
        raise Rejected(f"{field} must be exactly one e-mail address, got {value!r}")
    name, addr = parsed[0]
    return name, _ascii_addr_spec(field, addr)


def _ascii_addr_spec(field: str, addr: str) -> str:
    local, _, domain = addr.rpartition("@")
    if not local or not domain or any(c in addr for c in " <>,;\"\\"):
        raise Rejected(f"{field} address {addr!r} is not a plain addr-spec")
    if not local.isascii():
        # Would need SMTPUTF8 end to end, which neither SES Raw nor most MTAs promise.
        raise Rejected(f"{field} address {addr!r} has a non-ASCII local part (needs SMTPUTF8)")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise Rejected(f"{field} address {addr!r} has an invalid domain") from None
    return f"{local}@{domain}"


def _format_address(name: str, addr: str) -> str:
    return formataddr((name, addr), charset="utf-8") if name else addr


# -- headers -----------------------------------------------------------------------------------


def _refuse_line_breaks(name: str, value: str) -> None:
    if _LINE_BREAKS.search(value):
        raise Rejected(f"refusing header {name}: its value contains a line break "
                       f"(header injection?): {value!r}")


def _custom_headers(headers: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Validated caller headers: (Date / Message-ID overrides by lower-case name, the rest)."""
    overrides: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise Rejected(f"refusing header name {name!r}: not printable ASCII without ':'")
        key = name.lower()
        if key in _RESERVED:
            raise Rejected(f"refusing header {name}: it is built from the message fields")
        if key in seen:
            raise Rejected(f"refusing header {name}: given twice")
        seen.add(key)
        value = str(value)
        _refuse_line_breaks(name, value)
        if key in _OVERRIDABLE:
            overrides[key] = value
        else:
            extra.append((name, _encode_if_needed(name, value)))
    return overrides, extra


@lru_cache(maxsize=256)  # the Subject and the List-Id repeat for every message of a send
def _encode_if_needed(name: str, value: str) -> str:
    _refuse_line_breaks(name, value)
    if not _NEEDS_ENCODING.search(value):
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def header_text(text: str) -> str:
    """``text`` as one header line: line breaks and other controls become one space each run.
    For text that was never meant to hold header syntax, such as an issue's title."""
    return _CONTROLS.sub(" ", text).strip()


@lru_cache(maxsize=64)  # the Subject repeats for every message of a send
def _encode_subject(value: str) -> str:
    if _LONG_WORD.search(value) and not _LINE_BREAKS.search(value):
        return Header(value, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return _encode_if_needed("Subject", value)


def _header_line(name: str, value: str) -> bytes:
    # Values were checked for line breaks before encoding; RFC 2047 may have folded them.
    line = f"{name}: {value}"
    if len(line) > MAX_LINE and max(map(len, line.split("\r\n"))) > MAX_LINE:  # not yet folded
        line = _fold(name, line)
    return line.encode("ascii")


def _fold(name: str, line: str) -> str:
    """Fold an over-long header at whitespace; a value with no place to fold is refused."""
    out, current = [], ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(candidate) > MAX_LINE and current:
            out.append(current)
            current = word
        else:
            current = candidate
    out.append(current)
    if any(len(part) + 1 > MAX_LINE for part in out):
        raise Rejected(f"refusing header {name}: longer than {MAX_LINE} octets with no space "
                       "to fold at")
    return "\r\n ".join(out)


# -- bodies ------------------------------------------------------------------------------------


class _PartCache:
    """Encoded parts of the last few body objects, looked up by identity.

    A campaign hands the same body object to every recipient when nothing in it is personal;
    looking it up by identity costs nothing, where hashing an 80 KB string per message would
    cost as much as a good part of the encoding. Holding the body keeps its id from being reused.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._entries: dict[tuple[int, str], tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, body: str, subtype: str) -> bytes:
        entry = self._entries.get((id(body), subtype))
        if entry is not None and entry[0] is body:
            return entry[1]
        encoded = _encode_part(body, subtype)
        with self._lock:
            self._entries[(id(body), subtype)] = (body, encoded)
            while len(self._entries) > self._size:
                del self._entries[next(iter(self._entries))]
        return encoded


_part_cache = _PartCache()


def _encoded_part(body: str, subtype: str) -> bytes:
    return _part_cache.get(body, subtype)


def _always(payload: bytes | None, encoding: str) -> bytes:
    """The encoded body; only 7bit refuses one (a NUL, a long line): quoted-printable and
    base64 take any bytes, so None from them is a bug, not a body to send as it is."""
    if payload is None:
        raise ValueError(f"{encoding} refused a body it encodes whatever its bytes")
    return payload


def _encode_part(body: str, subtype: str) -> bytes:
    """The MIME part (its headers and encoded body) for one body text."""
    raw = body.encode("utf-8")
    if "\r" in body:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    # 7bit: ASCII, no NUL, short lines (RFC 2045 2.7); other plain text as quoted-printable
    # (still readable, and no base64 text part beside a 7bit HTML part, which rspamd scores);
    # anything else as base64.
    payload = None
    if body.isascii() and "\x00" not in body:
        payload = _seven_bit_starts.encode(subtype, raw)
    if payload is not None:
        encoding = "7bit"
        # The CRLF before the next boundary belongs to the boundary (RFC 2046 5.1.1): without
        # one of its own, a body's last line break would be lost.
        payload += b"\r\n"
    elif subtype == "plain" and "\x00" not in body:
        encoding = "quoted-printable"
        payload = _always(_quoted_printable_starts.encode(subtype, raw), encoding) + b"\r\n"
    else:
        encoding = "base64"
        # Line ends are insignificant in HTML, so only plain text pays for canonical CRLF.
        payload = _always(_base64_starts.encode(
            subtype, raw if subtype == "html" else raw.replace(b"\n", b"\r\n")), encoding)
    head = (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode("ascii")
    return head + payload


def _seven_bit(data: bytes) -> bytes | None:
    """ASCII ``data`` with CRLF line ends, or None when a line is too long for 7bit."""
    if _longest_line(data) > MAX_LINE:
        return None
    return data.replace(b"\n", b"\r\n")


def _longest_line(data: bytes) -> int:
    return max(map(len, data.split(b"\n")), default=0)


_BASE64_LINES = re.compile(b".{1,%d}" % BASE64_LINE, re.DOTALL)
_BASE64_LINE_BYTES = BASE64_LINE // 4 * 3  # 57 input bytes make one whole 76-character line


class _SharedStarts:
    """Reuse the encoding of the part that every reader's copy shares.

    A newsletter's bodies differ only in a reader's own links, near the end, so once two bodies
    of a subtype have been seen, their common start, cut where the encoding can be resumed, is
    encoded once; each later body that starts with it pays only for its own tail. The result is
    byte for byte what encoding the whole body gives: base64 is cut at a whole line (57 input
    bytes encode independently), 7bit after a line end.
    """

    MIN_SHARED = 1024  # below this, caching is not worth a comparison

    def __init__(self, encode: Callable[[bytes], bytes | None],
                 cut: Callable[[bytes, int], int]) -> None:
        self._encode = encode
        self._cut = cut  # (body, common length) -> where the shared start may end
        self._last: dict[str, bytes] = {}  # the previous body of each subtype
        self._shared: dict[str, tuple[bytes, bytes]] = {}  # subtype -> (start, its encoding)
        self._lock = threading.Lock()

    def encode(self, subtype: str, data: bytes) -> bytes | None:
        shared = self._shared.get(subtype)
        if shared is not None and data.startswith(shared[0]):
            tail = self._encode(data[len(shared[0]):])
            return None if tail is None else shared[1] + tail
        self._learn(subtype, data)
        return self._encode(data)

    def _learn(self, subtype: str, data: bytes) -> None:
        with self._lock:
            previous, self._last[subtype] = self._last.get(subtype), data
        if previous is None:
            return
        length = self._cut(data, _common_prefix_length(previous, data))
        if length < self.MIN_SHARED:
            return
        start = data[:length]
        encoded = self._encode(start)
        if encoded is not None:
            with self._lock:
                self._shared[subtype] = (start, encoded)


def _common_prefix_length(a: bytes, b: bytes) -> int:
    """Length of the common start of two byte strings, by bisection over C comparisons."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _base64_lines(data: bytes) -> bytes:
    # One C call for the whole body, then cut into 76-character lines with a C regex: several
    # times faster than base64.encodebytes, which loops over 57-byte chunks in Python.
    encoded = binascii.b2a_base64(data, newline=False)
    return b"\r\n".join(_BASE64_LINES.findall(encoded)) + b"\r\n"


_base64_starts = _SharedStarts(
    _base64_lines, lambda data, length: length - length % _BASE64_LINE_BYTES)
_seven_bit_starts = _SharedStarts(
    _seven_bit, lambda data, length: data.rfind(b"\n", 0, length) + 1)


def _quoted_printable(data: bytes) -> bytes:
    """Quoted-printable text (RFC 2045 6.7) with CRLF line ends, lines under 77 characters.
    Each line is encoded on its own, so the encoding can be resumed after any line end."""
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


_quoted_printable_starts = _SharedStarts(
    _quoted_printable, lambda data, length: data.rfind(b"\n", 0, length) + 1)
