"""A small SES v2-compatible HTTP endpoint with injectable faults, for tests and benchmarks.

Run it::

    python -m tests.peers.fake_ses --port 0 --latency 0.05 --rate 200 [--keep] ...

The first line on stdout is ``fake_ses listening on http://127.0.0.1:PORT``. Point boto3's
``sesv2`` client (or ``MAILER_SES_ENDPOINT_URL``) at that URL with any credentials.

SES v2 operations (the REST paths and JSON shapes of botocore's sesv2 model, errors with the
``x-amzn-ErrorType`` header so botocore raises the right modelled exception):

* ``POST /v2/email/outbound-emails`` SendEmail → ``{"MessageId": ...}``
* ``POST /v2/email/outbound-bulk-emails`` SendBulkEmail → ``{"BulkEmailEntryResults": [...]}``
  (inline template, up to 50 entries, per-entry faults; ``bulk`` ``absent`` / ``refused``
  makes it an endpoint or account without it: see the section "SendBulkEmail" below)
* ``GET  /v2/email/account`` GetAccount (SendQuota, SendingEnabled, EnforcementStatus)
* ``GET  /v2/email/identities/{identity}`` GetEmailIdentity
* ``GET  /v2/email/configuration-sets/{name}`` GetConfigurationSet

Faults, set by option at start or at run time with ``POST /_control`` (a JSON object with any of
the option names below, ``-`` written as ``_``):

* ``latency`` seconds added to every SendEmail answer
* ``rate`` requests per second (token bucket of ``burst`` tokens, default one second's worth)
  above which SendEmail answers 429 TooManyRequestsException "Maximum sending rate exceeded."
* ``error_rate`` probability and ``errors`` count (the next N) of 500 InternalFailure answers
* ``daily_quota`` accepted messages after which SendEmail answers LimitExceededException
  "Daily message quota exceeded." (also GetAccount's Max24HourSend; -1 = unlimited)
* ``paused`` SendingPausedException, and GetAccount says SendingEnabled false
* ``seed`` makes the ``error_rate`` and ``lose_answer_rate`` faults reproducible: each request's
  draws come from the seed, its recipients and how many requests for them came before, so a
  message's n-th try meets the same fault in every run, whatever the other threads do
* ``reject`` list of fnmatch patterns: a recipient matching one gets MessageRejected
* ``fail`` list of fnmatch patterns: a recipient matching one gets a 500 InternalFailure on every
  try (a message the provider cannot take while it takes every other one)
* ``identities`` / ``configuration_sets`` lists: when given, only those exist
* ``max_send_rate`` what GetAccount reports as MaxSendRate (default: ``rate``, or 14)
* ``keep`` keep every accepted raw message (``GET /_messages``)
* ``lose_answer_rate`` probability and ``lose_answers`` count (the next N) of messages that are
  *accepted* (counted, kept) and then answered with nothing: the connection is closed
  (``lose_how`` ``close``, the default) or reset (``reset``) before the answer, as when a
  network path fails after SES has taken the message. The client cannot tell it was sent.
* ``drop_request_rate`` probability that a SendEmail request is answered with a closed
  connection *before* it is accepted (not counted, not kept): to the client it looks exactly
  like a lost answer, yet nothing was sent; ``drop_how`` ``close`` (default) or ``reset``.
* ``kill_pids``, ``kill_at``, ``kill_on``: SIGKILL the sending process at a chosen moment of
  its ``kill_on``-th request (``request``, ``accepted``, ``answered``); ``fill_path``,
  ``fill_on``: fill the sender's database disk once the ``fill_on``-th message is accepted
  (see the section "the sender killed at a chosen moment" below).

``GET /_stats`` → ``{"accepted", "per_recipient", "throttled", "errors", "rejected",
"quota_refused", "paused_refused", "requests", "sendemail_requests", "max_in_flight", "first_accepted",
"last_accepted", "answers_lost", "lost_recipients", "requests_dropped", "dropped_recipients",
"killed", "disk_filled"}``; ``POST /_reset`` forgets counters and messages and restores the options the
process started with.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

DEFAULTS = {
    "latency": 0.0,
    "rate": 0.0,  # 0 = no cap
    "burst": 0.0,  # 0 = one second's worth of ``rate``
    "error_rate": 0.0,
    "errors": 0,
    "daily_quota": -1,
    "sent_last_24h": 0,
    "paused": False,
    "reject": [],
    "fail": [],
    "identities": None,
    "configuration_sets": None,
    "max_send_rate": None,
    "keep": False,
    "seed": None,
    "lose_answer_rate": 0.0,
    "lose_answers": 0,
    "lose_how": "close",
    "drop_request_rate": 0.0,
    "drop_how": "close",
}

_IDENTITY_PATH = re.compile(r"/v2/email/identities/([^/?]+)\Z")
_CONFIG_SET_PATH = re.compile(r"/v2/email/configuration-sets/([^/?]+)\Z")


class State:
    """Options, counters and the token bucket, shared by every handler thread."""

    def __init__(self, options: dict) -> None:
        self.initial = dict(options)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.options = dict(self.initial)
            self._reset_counters()

    def _reset_counters(self) -> None:
        self.accepted = 0
        self.per_recipient: dict[str, int] = {}
        self.throttled = self.errors = self.rejected = 0
        self.quota_refused = self.paused_refused = self.requests = 0
        self.in_flight = self.max_in_flight = 0
        self.answers_lost = 0
        self.lost_recipients: list[str] = []
        self.requests_dropped = 0
        self.dropped_recipients: list[str] = []
        self.sendemail_requests = 0
        self.bulk_requests = 0
        self.kill_claimed = False  # a request was picked for the kill (one kill per reset)
        self.killed: list[int] = []
        self.disk_filled = 0
        self.first_accepted: float | None = None
        self.last_accepted: float | None = None
        self.messages: list[dict] = []
        self.tries: dict[str, int] = {}  # SendEmail requests per recipient list
        self._unseeded = random.getrandbits(64)  # stands in for a missing seed
        self._tokens = self._capacity()
        self._refilled = time.monotonic()

    def update(self, changes: dict) -> None:
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
        with self.lock:
            self.options.update(changes)
            if {"rate", "burst"} & changes.keys():
                self._tokens = self._capacity()
                self._refilled = time.monotonic()

    def _capacity(self) -> float:
        rate = float(self.options["rate"] or 0)
        return float(self.options["burst"] or max(1.0, rate))

    def next_try(self, recipients: list[str]) -> str:
        """Names this SendEmail: its recipients and which try for them it is (with the lock)."""
        key = ",".join(sorted(recipients))
        self.tries[key] = self.tries.get(key, 0) + 1
        return f"{key}:{self.tries[key]}"

    def chance(self, attempt: str, fault: str) -> float:
        """A uniform draw in [0, 1) for one fault of one try, from the seed and nothing else.

        Per try of a message, not from one stream shared in arrival order: with a shared
        seeded stream the seed fixed *which request numbers* fail (for seed 7 at 10 %: 124,
        125, 129, 130, 134, ..., 179, 180), every run of a test made about as many requests,
        and a message retried alone at the end of a send took consecutive numbers, so whether
        one reader met five faults depended on thread timing, not on the rate asked for."""
        seed = self.options.get("seed")
        text = f"{self._unseeded if seed is None else seed}:{attempt}:{fault}"
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2 ** 64

    def take_token(self) -> bool:
        """Token bucket: False when the caller is over the rate cap (called with the lock)."""
        rate = float(self.options["rate"] or 0)
        if rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self._capacity(), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def take_tokens(self, count: int) -> bool:
        """The bucket for a call of ``count`` messages (SES counts each against the rate): it
        goes when a token is left, and the rest is a debt the next calls wait for, so a call
        bigger than the burst is not refused for ever (called with the lock)."""
        if not self.take_token():
            return False
        if float(self.options["rate"] or 0) > 0:
            self._tokens -= max(0, count - 1)
        return True

    def stats(self) -> dict:
        with self.lock:
            return {
                "accepted": self.accepted,
                "per_recipient": dict(self.per_recipient),
                "throttled": self.throttled,
                "errors": self.errors,
                "rejected": self.rejected,
                "quota_refused": self.quota_refused,
                "paused_refused": self.paused_refused,
                "requests": self.requests,
                "sendemail_requests": self.sendemail_requests,
                "bulk_requests": self.bulk_requests,
                "max_in_flight": self.max_in_flight,
                "first_accepted": self.first_accepted,
                "last_accepted": self.last_accepted,
                "answers_lost": self.answers_lost,
                "lost_recipients": list(self.lost_recipients),
                "requests_dropped": self.requests_dropped,
                "dropped_recipients": list(self.dropped_recipients),
                "killed": list(self.killed),
                "disk_filled": self.disk_filled,
            }


class SesError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _recipients(request: dict, raw: bytes | None) -> list[str]:
    listed = (request.get("Destination") or {}).get("ToAddresses") or []
    if listed or raw is None:  # SES, too, takes Destination over the headers when given
        return [address.lower() for address in listed]
    headers = BytesHeaderParser().parsebytes(raw)
    fields = headers.get_all("To", []) + headers.get_all("Cc", [])
    return [address.lower() for _, address in getaddresses(fields) if address]


def _raw_data(request: dict) -> bytes | None:
    data = ((request.get("Content") or {}).get("Raw") or {}).get("Data")
    return base64.b64decode(data) if data else None


def send_email(state: State, request: dict) -> dict:
    """SendEmail, faults first in the order SES would meet them."""
    options = state.options
    listed = bool((request.get("Destination") or {}).get("ToAddresses"))
    # Decoding ~130 KB of base64 per request is the costliest step here: only when needed.
    raw = _raw_data(request) if options["keep"] or not listed else None
    recipients = _recipients(request, raw)
    sender = request.get("FromEmailAddress") or ""
    with state.lock:
        attempt = state.next_try(recipients)
        if options["drop_request_rate"] and \
                state.chance(attempt, "drop") < options["drop_request_rate"]:
            state.requests_dropped += 1
            state.dropped_recipients.extend(recipients)
            raise AnswerLost(options["drop_how"])  # before acceptance: nothing was taken
        if options["paused"]:
            state.paused_refused += 1
            raise SesError(400, "SendingPausedException",
                           "Sending is paused for this account.")
        config_set = request.get("ConfigurationSetName")
        if config_set and options["configuration_sets"] is not None \
                and config_set not in options["configuration_sets"]:
            raise SesError(404, "NotFoundException",
                           f"Configuration set <{config_set}> does not exist.")
        if options["errors"] > 0 or (options["error_rate"]
                                     and state.chance(attempt, "5xx") < options["error_rate"]):
            options["errors"] = max(0, options["errors"] - 1)
            state.errors += 1
            raise SesError(500, "InternalFailure", "Internal failure (injected).")
        if _matching(recipients, options["fail"]):
            state.errors += 1
            raise SesError(500, "InternalFailure", "Internal failure for this message.")
        if not state.take_token():
            state.throttled += 1
            raise SesError(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        quota = options["daily_quota"]
        if quota is not None and quota >= 0 and \
                state.accepted + options["sent_last_24h"] >= quota:
            state.quota_refused += 1
            raise SesError(400, "LimitExceededException", "Daily message quota exceeded.")
        if options["identities"] is not None and not _verified(sender, options["identities"]):
            state.rejected += 1
            raise SesError(400, "MessageRejected",
                           "Email address is not verified. The following identities failed "
                           f"the check in region US-EAST-1: {sender}")
        refused = _matching(recipients, options["reject"])
        if refused:
            state.rejected += 1
            raise SesError(400, "MessageRejected", f"Address rejected: {refused[0]}")
        message_id = f"{uuid.uuid4().hex}-fake-ses"
        _count_accepted(state, recipients)
        if options["keep"]:
            state.messages.append({
                "id": message_id, "destinations": recipients, "source": sender,
                "raw": (raw or b"").decode("utf-8", "replace"),
                "tags": request.get("EmailTags") or [],
                "configuration_set": request.get("ConfigurationSetName"),
            })
        if _answer_is_lost(state, attempt):
            state.answers_lost += 1
            state.lost_recipients.extend(recipients)
            raise AnswerLost(options["lose_how"])
    return {"MessageId": message_id}


# -- mailbox simulator events (for `mailer doctor --live`) -----------------------------------
# With ``simulator_events`` set to a file path, a message accepted for an address at
# simulator.amazonses.com appends the SES events the real simulator would publish (bare SES
# event JSON, one per line: what `mailer events replay` reads). ``simulator_drop`` lists event
# types never written (a destination that does not publish them).
DEFAULTS.update({"simulator_events": None, "simulator_drop": []})
_SIMULATED = {"success": ("Delivery",), "bounce": ("Bounce",), "complaint": ("Delivery", "Complaint"),
              "suppressionlist": ("Bounce",), "ooto": ("Delivery",)}


def _simulator_event(kind: str, recipient: str, message_id: str, config_set: str | None) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    mail = {"timestamp": now, "messageId": message_id, "destination": [recipient],
            "source": "newsletter@example.org", "tags": {"ses:configuration-set": [config_set or ""]}}
    details = {
        "Delivery": ("delivery", {"timestamp": now, "recipients": [recipient],
                                  "smtpResponse": "250 2.6.0 Message received"}),
        "Bounce": ("bounce", {"bounceType": "Permanent", "bounceSubType": (
            "OnAccountSuppressionList" if recipient.startswith("suppressionlist@") else "General"),
            "bouncedRecipients": [{"emailAddress": recipient, "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": now, "feedbackId": f"{message_id}-bounce"}),
        "Complaint": ("complaint", {"complainedRecipients": [{"emailAddress": recipient}],
                                    "timestamp": now, "feedbackId": f"{message_id}-complaint",
                                    "complaintFeedbackType": "abuse"}),
    }
    key, detail = details[kind]
    return {"eventType": kind, "mail": mail, key: detail}


def _write_simulator_events(state: State, request: dict, message_id: str) -> None:
    path = state.options.get("simulator_events")
    if not path:
        return
    config_set = request.get("ConfigurationSetName")
    lines = []
    for recipient in _recipients(request, _raw_data(request)):
        mailbox, _, domain = recipient.partition("@")
        for kind in _SIMULATED.get(mailbox, ()) if domain == "simulator.amazonses.com" else ():
            if kind not in state.options["simulator_drop"]:
                lines.append(json.dumps(_simulator_event(kind, recipient, message_id, config_set)))
    if lines:
        with state.lock, open(path, "a", encoding="utf-8") as events:
            events.write("\n".join(lines) + "\n")


_send_email_without_simulator = send_email


def send_email(state: State, request: dict) -> dict:
    reply = _send_email_without_simulator(state, request)
    _write_simulator_events(state, request, reply["MessageId"])
    return reply
# -- end of mailbox simulator events ----------------------------------------------------------


# -- the sender killed at a chosen moment, its database disk filled (the fault matrix) --------
# ``kill_pids`` lists the sending processes (``mailer send``, ``mailer worker``); the
# ``kill_on``-th SendEmail request (counted from 1) SIGKILLs the one among them that sent it,
# at the moment ``kill_at`` names: ``request`` (the request arrived, nothing is accepted),
# ``accepted`` (the message is taken, its answer never leaves) or ``answered`` (the answer is
# written, before the sender can record it). Which process sent a request is read from the
# kernel's socket table, so with several workers the kill hits the one in that exchange; a
# request due for the kill from a process not listed passes the kill to the next listed one's.
# ``fill_path`` names a file on the sender's database disk: the ``fill_on``-th accepted message
# fills that disk before its answer goes back, so recording the accepted message fails.
DEFAULTS.update({"kill_pids": [], "kill_at": "accepted", "kill_on": 0,
                 "fill_path": None, "fill_on": 0})
KILL_MOMENTS = ("request", "accepted", "answered")
_send_email_without_kills = send_email


def send_email(state: State, request: dict, client_port: int | None = None) -> dict:
    kill_here = _picked_for_the_kill(state, client_port)
    moment = state.options["kill_at"]
    if kill_here and moment not in KILL_MOMENTS:
        raise SesError(400, "BadRequestException", f"kill_at must be one of {KILL_MOMENTS}")
    if kill_here and moment == "request":
        _kill_sender(state, client_port)
        raise AnswerLost("close")
    reply = _send_email_without_kills(state, request)
    _fill_disk_if_due(state)
    if kill_here and moment == "accepted":
        _kill_sender(state, client_port)
        raise AnswerLost("close")
    if kill_here:
        reply["_kill_after_answer"] = client_port
    return reply


def _picked_for_the_kill(state: State, client_port: int | None) -> bool:
    """Whether this SendEmail request is the one to kill its sender at.

    The ``kill_on``-th request, or, when it came from a process outside ``kill_pids`` (the
    ``mailer send`` of a PostgreSQL run, when only its workers are to die), the first request
    after it that comes from one of them: so the kill always lands in a listed process's own
    exchange, and at most once."""
    with state.lock:
        state.sendemail_requests += 1
        candidates = [int(pid) for pid in state.options["kill_pids"]]
        due = bool(candidates) and not state.kill_claimed and \
            state.sendemail_requests >= state.options["kill_on"] > 0
    if not due:
        return False
    if len(candidates) > 1 and _process_on_port(client_port, candidates) is None:
        return False  # not a listed process's request: the next one may be
    with state.lock:
        picked, state.kill_claimed = not state.kill_claimed, True
    return picked


def _kill_sender(state: State, client_port: int | None) -> None:
    candidates = [int(pid) for pid in state.options["kill_pids"]]
    pid = _process_on_port(client_port, candidates) if len(candidates) > 1 else candidates[0]
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    with state.lock:
        state.killed.append(pid)


def _process_on_port(port: int | None, candidates: list[int]) -> int | None:
    """Which of ``candidates`` owns the local TCP port ``port`` (Linux /proc), else None."""
    if port is None:
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in candidates:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                if os.readlink(f"/proc/{pid}/fd/{name}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def _fill_disk_if_due(state: State) -> None:
    with state.lock:
        due = state.options["fill_path"] and state.accepted == state.options["fill_on"]
        path = state.options["fill_path"]
    if not due:
        return
    with open(path, "wb", buffering=0) as handle:
        for chunk in (65536, 512):  # big blocks, then the last small gaps
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError:
                pass
    with state.lock:
        state.disk_filled += 1
# -- end of kills and a full disk -----------------------------------------------------------


# -- SendBulkEmail ----------------------------------------------------------------------------
# ``POST /v2/email/outbound-bulk-emails``, as SES v2 answers it: one inline template
# (DefaultContent.Template: TemplateContent Subject/Html/Text, TemplateData, Headers) and up to
# 50 BulkEmailEntries (Destination, ReplacementTemplateData, ReplacementHeaders,
# ReplacementTags), answered with one BulkEmailEntryResult (Status, Error, MessageId) per entry.
# The template is rendered per entry as SES's Handlebars does (``{{name}}`` from the entry's data
# over the default data, HTML-escaped in Html; a variable missing from both fails that entry).
# Faults: for the whole call, as SendEmail meets them (a dropped request, paused, 5xx, the rate
# cap counting every entry, an unverified sender, a lost answer after every entry was taken,
# the kills); for one entry, ``reject`` → MESSAGE_REJECTED, ``fail`` → TRANSIENT_FAILURE,
# ``daily_quota`` → ACCOUNT_DAILY_QUOTA_EXCEEDED. ``bulk``: ``on`` (default), ``absent`` (404
# UnknownOperationException: an endpoint without the operation, as moto_server) or ``refused``
# (400 BadRequestException: an account that may not use it).
DEFAULTS.update({"bulk": "on"})
BULK_MAX = 50
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;",
                 "`": "&#x60;", "=": "&#x3D;"}  # Handlebars' own escaping


class RenderingFailure(Exception):
    pass


def _render(template: str, data: dict, *, html: bool) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in data:
            raise RenderingFailure(f"Attribute '{name}' is not present in the rendering data.")
        text = str(data[name])
        return "".join(_HTML_ESCAPES.get(c, c) for c in text) if html else text

    if "{{" in _VARIABLE.sub("", template):  # a tag that is not a plain variable
        raise RenderingFailure("Template has an unbalanced or malformed variable.")
    return _VARIABLE.sub(value, template)


def _variables(request: dict) -> set[str]:
    """The template's variable names (read once per call; refuses a malformed tag)."""
    cached = request.get("_variables")
    if cached is None:
        content = request["DefaultContent"]["Template"]["TemplateContent"]
        parts = [content.get(k) or "" for k in ("Subject", "Html", "Text")]
        if any("{{" in _VARIABLE.sub("", part) for part in parts):
            raise RenderingFailure("Template has an unbalanced or malformed variable.")
        cached = request["_variables"] = {m for part in parts for m in _VARIABLE.findall(part)}
    return cached


def _bulk_mime(sender: str, to: str, subject: str, html: str, text: str,
               headers: list[dict], reply_to: list[str]) -> str:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = ", ".join(reply_to)
    for header in headers:
        message[header["Name"]] = header["Value"]
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message.as_string()


def _bulk_request_faults(state: State, request: dict, recipients: list[str], attempt: str):
    """The faults that refuse the whole call (with the lock held)."""
    options = state.options
    if options["bulk"] == "absent":
        raise SesError(404, "UnknownOperationException",
                       "no operation at /v2/email/outbound-bulk-emails")
    if options["bulk"] == "refused":
        raise SesError(400, "BadRequestException",
                       "SendBulkEmail is not enabled for this account.")
    if options["drop_request_rate"] and \
            state.chance(attempt, "drop") < options["drop_request_rate"]:
        state.requests_dropped += 1
        state.dropped_recipients.extend(recipients)
        raise AnswerLost(options["drop_how"])
    entries = request.get("BulkEmailEntries") or []
    if not entries or len(entries) > BULK_MAX:
        raise SesError(400, "BadRequestException",
                       f"BulkEmailEntries must hold 1 to {BULK_MAX} entries")
    if not ((request.get("DefaultContent") or {}).get("Template") or {}).get("TemplateContent"):
        raise SesError(400, "BadRequestException", "DefaultContent.Template is required")
    if options["paused"]:
        state.paused_refused += 1
        raise SesError(400, "SendingPausedException", "Sending is paused for this account.")
    config_set = request.get("ConfigurationSetName")
    if config_set and options["configuration_sets"] is not None \
            and config_set not in options["configuration_sets"]:
        raise SesError(404, "NotFoundException",
                       f"Configuration set <{config_set}> does not exist.")
    if options["errors"] > 0 or (options["error_rate"]
                                 and state.chance(attempt, "5xx") < options["error_rate"]):
        options["errors"] = max(0, options["errors"] - 1)
        state.errors += 1
        raise SesError(500, "InternalFailure", "Internal failure (injected).")
    if not state.take_tokens(len(entries)):
        state.throttled += 1
        raise SesError(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
    sender = request.get("FromEmailAddress") or ""
    if options["identities"] is not None and \
            not _verified(getaddresses([sender])[0][1] or sender, options["identities"]):
        state.rejected += 1
        raise SesError(400, "MessageRejected",
                       "Email address is not verified. The following identities failed "
                       f"the check in region US-EAST-1: {sender}")


def _bulk_entry_result(state: State, request: dict, entry: dict, attempt: str) -> dict:
    """One entry's outcome (with the lock held)."""
    options = state.options
    recipients = [a.lower() for a in (entry.get("Destination") or {}).get("ToAddresses") or []]
    if _matching(recipients, options["fail"]):
        state.errors += 1
        return {"Status": "TRANSIENT_FAILURE", "Error": "Internal failure for this message."}
    quota = options["daily_quota"]
    if quota is not None and quota >= 0 and state.accepted + options["sent_last_24h"] >= quota:
        state.quota_refused += 1
        return {"Status": "ACCOUNT_DAILY_QUOTA_EXCEEDED",
                "Error": "Daily message quota exceeded."}
    refused = _matching(recipients, options["reject"])
    if refused:
        state.rejected += 1
        return {"Status": "MESSAGE_REJECTED", "Error": f"Address rejected: {refused[0]}"}
    template = request["DefaultContent"]["Template"]
    content = template["TemplateContent"]
    try:
        data = json.loads(template.get("TemplateData") or "{}")
        replacement = ((entry.get("ReplacementEmailContent") or {})
                       .get("ReplacementTemplate") or {}).get("ReplacementTemplateData")
        data.update(json.loads(replacement or "{}"))
        if options["keep"]:  # the whole message, kept for the test to read
            subject = _render(content.get("Subject") or "", data, html=False)
            html = _render(content.get("Html") or "", data, html=True)
            text = _render(content.get("Text") or "", data, html=False)
        else:  # SES renders on its own machines: only check what rendering would refuse
            missing = _variables(request) - data.keys()
            if missing:
                raise RenderingFailure(f"Attribute '{sorted(missing)[0]}' is not present in "
                                       "the rendering data.")
    except (ValueError, RenderingFailure) as error:
        return {"Status": "FAILED", "Error": f"Rendering failure: {error}"}
    message_id = f"{uuid.uuid4().hex}-fake-ses"
    _count_accepted(state, recipients)
    if options["keep"]:
        headers = (template.get("Headers") or []) + (entry.get("ReplacementHeaders") or [])
        tags = {t["Name"]: t["Value"] for t in request.get("DefaultEmailTags") or []}
        tags.update({t["Name"]: t["Value"] for t in entry.get("ReplacementTags") or []})
        state.messages.append({
            "id": message_id, "destinations": recipients, "source": request["FromEmailAddress"],
            "raw": _bulk_mime(request["FromEmailAddress"], ", ".join(recipients), subject, html,
                              text, headers, request.get("ReplyToAddresses") or []),
            "tags": [{"Name": k, "Value": v} for k, v in tags.items()],
            "configuration_set": request.get("ConfigurationSetName"), "bulk": True,
        })
    return {"Status": "SUCCESS", "MessageId": message_id}


def send_bulk_email(state: State, request: dict, client_port: int | None = None) -> dict:
    entries = request.get("BulkEmailEntries") or []
    recipients = sorted(a.lower() for e in entries
                        for a in (e.get("Destination") or {}).get("ToAddresses") or [])
    with state.lock:
        state.bulk_requests += 1
    kill_here = state.options["bulk"] == "on" and _picked_for_the_kill(state, client_port)
    moment = state.options["kill_at"]
    if kill_here and moment == "request":
        _kill_sender(state, client_port)
        raise AnswerLost("close")
    with state.lock:
        attempt = state.next_try(recipients)
        _bulk_request_faults(state, request, recipients, attempt)
        results = [_bulk_entry_result(state, request, entry, attempt) for entry in entries]
        lost = _answer_is_lost(state, attempt)
        if lost:
            state.answers_lost += 1
            state.lost_recipients.extend(
                r for e, result in zip(entries, results, strict=True) if result["Status"] == "SUCCESS"
                for r in (e.get("Destination") or {}).get("ToAddresses") or [])
    _fill_disk_if_due(state)
    if kill_here and moment == "accepted":
        _kill_sender(state, client_port)
        raise AnswerLost("close")
    if lost:
        raise AnswerLost(state.options["lose_how"])
    reply: dict = {"BulkEmailEntryResults": results}
    if kill_here:
        reply["_kill_after_answer"] = client_port
    return reply
# -- end of SendBulkEmail ---------------------------------------------------------------------


class AnswerLost(Exception):
    """The message was accepted; the handler closes the connection instead of answering."""


def _answer_is_lost(state: State, attempt: str) -> bool:
    options = state.options
    if options["lose_answers"] > 0:
        options["lose_answers"] -= 1
        return True
    rate = float(options["lose_answer_rate"] or 0)
    return rate > 0 and state.chance(attempt, "lost") < rate


def _matching(recipients: list[str], patterns: list[str]) -> list[str]:
    return [r for r in recipients if any(fnmatch.fnmatch(r, p.lower()) for p in patterns)]


def _count_accepted(state: State, recipients: list[str]) -> None:
    now = time.time()
    state.accepted += 1
    state.first_accepted = state.first_accepted or now
    state.last_accepted = now
    for recipient in recipients:
        state.per_recipient[recipient] = state.per_recipient.get(recipient, 0) + 1


def _verified(identity: str, identities: list[str]) -> bool:
    identity = identity.lower()
    domain = identity.rpartition("@")[2]
    known = {i.lower() for i in identities}
    return identity in known or domain in known


# -- account standing (for the doctor's account checks) --------------------------------------
# ``enforcement_status`` HEALTHY / PROBATION / SHUTDOWN and ``production_access`` (False: the
# SES sandbox) are what GetAccount reports; they change nothing else.
DEFAULTS.update({"enforcement_status": "HEALTHY", "production_access": True})


def get_account(state: State) -> dict:
    options = state.options
    with state.lock:
        sent = state.accepted + options["sent_last_24h"]
    max_rate = options["max_send_rate"] or options["rate"] or 14.0
    return {
        "SendQuota": {"Max24HourSend": float(options["daily_quota"]),
                      "MaxSendRate": float(max_rate), "SentLast24Hours": float(sent)},
        "SendingEnabled": not options["paused"],
        "EnforcementStatus": options["enforcement_status"],
        "ProductionAccessEnabled": bool(options["production_access"]),
        "DedicatedIpAutoWarmupEnabled": False,
    }


def get_identity(state: State, identity: str) -> dict:
    identities = state.options["identities"]
    if identities is not None and identity.lower() not in {i.lower() for i in identities}:
        raise SesError(404, "NotFoundException", f"Email identity <{identity}> does not exist.")
    kind = "EMAIL_ADDRESS" if "@" in identity else "DOMAIN"
    return {"IdentityType": kind, "VerifiedForSendingStatus": True,
            "VerificationStatus": "SUCCESS", "FeedbackForwardingStatus": True}


def get_configuration_set(state: State, name: str) -> dict:
    known = state.options["configuration_sets"]
    if known is not None and name not in known:
        raise SesError(404, "NotFoundException", f"Configuration set <{name}> does not exist.")
    return {"ConfigurationSetName": name}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore reuses its pooled connections
    disable_nagle_algorithm = True
    server_version = "fake-ses"
    state: State  # set on the subclass made by serve()

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self._drain()
        try:
            if path == "/v2/email/account":
                self._reply(200, get_account(self.state))
            elif match := _IDENTITY_PATH.match(path):
                self._reply(200, get_identity(self.state, unquote(match.group(1))))
            elif match := _CONFIG_SET_PATH.match(path):
                self._reply(200, get_configuration_set(self.state, unquote(match.group(1))))
            elif path == "/_stats":
                self._reply(200, self.state.stats())
            elif path == "/_messages":
                with self.state.lock:
                    self._reply(200, {"messages": list(self.state.messages)})
            else:
                raise SesError(404, "UnknownOperationException", f"no operation at {path}")
        except SesError as error:
            self._error(error)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._drain()
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            self._error(SesError(400, "BadRequestException", "body is not JSON"))
            return
        try:
            if path == "/v2/email/outbound-emails":
                self._send_email(payload)
            elif path == "/v2/email/outbound-bulk-emails":
                self._send_email(payload, operation=send_bulk_email)
            elif path == "/_control":
                self.state.update(payload)
                self._reply(200, dict(self.state.options))
            elif path == "/_reset":
                self.state.reset()
                self._reply(200, {"reset": True})
            else:
                raise SesError(404, "UnknownOperationException", f"no operation at {path}")
        except SesError as error:
            self._error(error)
        except ValueError as error:
            self._error(SesError(400, "BadRequestException", str(error)))

    def _send_email(self, payload: dict, operation=None) -> None:
        operation = operation or send_email
        state = self.state
        with state.lock:
            state.requests += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            try:
                answer = operation(state, payload, self.client_address[1])
            except AnswerLost as lost:
                self._hang_up(reset=str(lost) == "reset")
                return
            finally:
                latency = float(state.options["latency"] or 0)
                if latency > 0:
                    time.sleep(latency)
            kill_port = answer.pop("_kill_after_answer", False)
            self._reply(200, answer)
            if kill_port is not False:
                _kill_sender(state, kill_port)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _hang_up(self, *, reset: bool) -> None:
        """Close the connection with no answer: a FIN, or an RST when ``reset``."""
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_RDWR)

    def _drain(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, payload: dict) -> None:
        self._write(status, json.dumps(payload).encode(), {})

    def _error(self, error: SesError) -> None:
        body = json.dumps({"message": error.message}).encode()
        self._write(error.status, body, {"x-amzn-ErrorType": error.code})

    def _write(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        # Status line, headers and body in one write: two small writes would meet Nagle's
        # algorithm and the client's delayed ACK, 40 ms per request.
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", uuid.uuid4().hex)
        for name, value in headers.items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n" + body)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve(options: dict, host: str = "127.0.0.1", port: int = 0) -> Server:
    handler = type("BoundHandler", (Handler,), {"state": State(options)})
    return Server((host, port), handler)


def parse_args(argv: list[str] | None = None) -> tuple[str, int, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--burst", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--errors", type=int, default=0)
    parser.add_argument("--daily-quota", type=int, default=-1)
    parser.add_argument("--sent-last-24h", type=int, default=0)
    parser.add_argument("--max-send-rate", type=float, default=None)
    parser.add_argument("--paused", action="store_true")
    parser.add_argument("--reject", action="append", default=[], metavar="PATTERN")
    parser.add_argument("--fail", action="append", default=[], metavar="PATTERN")
    parser.add_argument("--identities", default=None, help="comma-separated; default: all")
    parser.add_argument("--configuration-sets", default=None, help="comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep raw messages for /_messages")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--lose-answer-rate", type=float, default=0.0)
    parser.add_argument("--lose-answers", type=int, default=0)
    parser.add_argument("--lose-how", choices=["close", "reset"], default="close")
    args = parser.parse_args(argv)
    options = dict(DEFAULTS)
    for key in DEFAULTS:
        if hasattr(args, key):
            options[key] = getattr(args, key)
    for key in ("identities", "configuration_sets"):
        if options[key] is not None:
            options[key] = [part.strip() for part in options[key].split(",") if part.strip()]
    return args.host, args.port, options


def main(argv: list[str] | None = None) -> None:
    host, port, options = parse_args(argv)
    server = serve(options, host, port)
    print(f"fake_ses listening on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
