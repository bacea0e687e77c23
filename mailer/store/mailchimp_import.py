"""Bring a Mailchimp audience into mailer with its consent, unsubscribe and bounce history.

subscribed → active (with the opt-in and confirm times and IPs and Mailchimp's LEID/EUID),
unsubscribed → unsubscribed, cleaned → bounced, nonsubscribed → skipped. Nobody is mailed or
asked to confirm. An address already in mailer never becomes less restricted: the export can
only add an address or move it to a stricter state. Files are read most restrictive first, so an
address in two files keeps the stricter state, and the report names it.

New addresses go in by the bulk path of ``import_csv``: the reader's created_at and confirmed_at
are Mailchimp's OPTIN_TIME and CONFIRM_TIME (:func:`reader_times`), and one creation row in the
history each, at the import time, lets the figures count them as imported that week. Changes
to existing ones go through :func:`change_status`. Both record source "mailchimp".
``dry_run`` decides everything the same way and writes nothing, so it prints the same report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import suppression
from mailer.audience_files import BadRow, MailchimpMember, MemberKind, open_mailchimp_export
from mailer.domain import SubscriberStatus, utcnow
from mailer.errors import InvalidAddress, StoreError
from mailer.read_ahead import read_ahead
from mailer.store.import_seen import First, SeenAddresses
from mailer.store.models import Subscriber, SubscriberChange, table_of
from mailer.store.subscriber_files import (
    IMPORT_CHUNK_ROWS,
    READ_AHEAD_LINES,
    ImportReport,
    _Candidate,
    insert_rows,
)
from mailer.store.subscriber_files import _drop_forgotten as _drop_forgotten_candidates
from mailer.store.subscribers import change_status, normalise_address
from mailer.subscription_states import Event, allows

SOURCE = suppression.MAILCHIMP
# json.dumps(…, sort_keys=True) with and without ensure_ascii, each encoder built once: dumps
# with any option builds a new encoder per call, a second over a million readers
_ATTRS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_DETAIL_JSON = json.JSONEncoder(sort_keys=True).encode
TARGET = {MemberKind.SUBSCRIBED: SubscriberStatus.ACTIVE,
          MemberKind.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
          MemberKind.CLEANED: SubscriberStatus.BOUNCED}
# The workflow's event each kind of member stands for (mailer.subscription_states).
EVENT = {MemberKind.SUBSCRIBED: Event.CONFIRM, MemberKind.UNSUBSCRIBED: Event.UNSUBSCRIBE,
         MemberKind.CLEANED: Event.BOUNCE}
@dataclass(frozen=True)
class TwoFiles:
    email: str
    first: tuple[str, int]  # (file, line) that decided
    again: tuple[str, int]
    kept: str  # the state the address ends in (or "skipped")


@dataclass
class MailchimpReport:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    kinds: Counter = field(default_factory=Counter)  # rows per Mailchimp status
    added: Counter = field(default_factory=Counter)  # new subscribers per state
    changed: Counter = field(default_factory=Counter)  # "active → bounced" per existing address
    unchanged: int = 0  # already in mailer in the state the export gives
    kept: Counter = field(default_factory=Counter)  # stricter in mailer than in the export
    nonsubscribed: int = 0  # never opted in: skipped
    duplicates: int = 0  # the same address again in the same file
    in_two_files: list[TwoFiles] = field(default_factory=list)
    forgotten: list[tuple[str, int, str]] = field(default_factory=list)  # file, line, address
    invalid: list[tuple[str, int, str]] = field(default_factory=list)  # file, line, reason
    dry_run: bool = False

    def add(self, other: MailchimpReport) -> None:
        """Count ``other`` (a part of the same import: one chunk's reading) in too."""
        for name in ("rows", "unchanged", "nonsubscribed", "duplicates"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for counter in ("kinds", "added", "changed", "kept"):
            getattr(self, counter).update(getattr(other, counter))
        for rows in ("in_two_files", "forgotten", "invalid"):
            getattr(self, rows).extend(getattr(other, rows))

    @property
    def changed_anything(self) -> bool:
        return bool(sum(self.added.values()) or sum(self.changed.values()))

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run, "files": self.files, "rows": self.rows,
            "by_mailchimp_status": dict(self.kinds), "added": dict(self.added),
            "changed": dict(self.changed), "unchanged": self.unchanged, "kept": dict(self.kept),
            "nonsubscribed_skipped": self.nonsubscribed, "duplicates": self.duplicates,
            "in_two_files": [{"email": t.email, "first": {"file": t.first[0], "line": t.first[1]},
                              "again": {"file": t.again[0], "line": t.again[1]},
                              "kept": t.kept} for t in self.in_two_files],
            "forgotten": [{"file": f, "line": n, "email": e} for f, n, e in self.forgotten],
            "invalid": [{"file": f, "line": n, "reason": r} for f, n, r in self.invalid],
            "changed_anything": self.changed_anything,
        }


@dataclass(frozen=True)
class _Row:
    member: MailchimpMember
    email: str  # normalised


def import_mailchimp(engine: Engine, path: Path, *, secret: str, dry_run: bool = False,
                     on_total: Callable[[int], None] | None = None,
                     on_rows: Callable[[int], None] | None = None) -> MailchimpReport:
    """Import the export at ``path`` (zip or folder), chunk by chunk; see the module doc.

    ``on_total`` hears the (approximate) number of rows before the work starts, ``on_rows`` how
    many more rows were handled after each chunk: progress for the caller to show.
    """
    report = MailchimpReport(dry_run=dry_run)
    with open_mailchimp_export(path) as export:
        export.check_headers()  # a broken file stops the import before anything is written
        report.files = [f.name for f in export.files]
        total = export.count_rows()  # also refuses a line too long to read, before any write
        if on_total is not None:
            on_total(total)
    # a large export is read in a second process while this one writes (mailer.read_ahead)
    admitted = (read_ahead(lambda: _admitted_chunks(path)) if total > READ_AHEAD_LINES
                else _admitted_chunks(path))
    with closing(admitted), Session(engine, expire_on_commit=False) as session:
        for rows, found in admitted:
            report.add(found)
            _import_chunk(session, rows, report, secret=secret, dry_run=dry_run)
            session.expunge_all()  # keep memory flat on large exports
            if on_rows is not None:
                on_rows(found.rows)
    return report


def _admitted_chunks(path: Path) -> Generator[tuple[list[_Row], MailchimpReport], None, None]:
    """Each chunk of every file read and admitted, with what reading it found (its rows,
    repeats, bad rows): nothing here touches the database (it may run in a process of its
    own)."""
    with open_mailchimp_export(path) as export, SeenAddresses() as seen:
        for export_file in export.files:
            for chunk in _chunks(export.members(export_file)):
                found = MailchimpReport()
                yield _admit(chunk, found, seen), found


def _chunks(records: Iterator[MailchimpMember | BadRow]) -> Iterator[list]:
    chunk: list = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= IMPORT_CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _admit(chunk: list, report: MailchimpReport, seen: SeenAddresses) -> list[_Row]:
    """The rows of a chunk that may change mailer: valid, first of their address in the run
    (asked of ``seen`` for the chunks before: no set of every address in memory)."""
    valid: list[tuple[MailchimpMember, str, str]] = []  # (record, email, folded)
    for record in chunk:
        report.rows += 1
        if isinstance(record, BadRow):
            report.invalid.append((record.file, record.line, record.reason))
            continue
        report.kinds[record.kind.value] += 1
        try:
            email = normalise_address(record.email)
        except InvalidAddress as error:
            report.invalid.append((record.file, record.line, str(error)))
            continue
        valid.append((record, email, email.lower()))  # the unique index is on lower(email)
    earlier = seen.earlier(folded for _record, _email, folded in valid)
    first_here: dict[str, First] = {}
    rows: list[_Row] = []
    for record, email, folded in valid:
        first = first_here.get(folded) or earlier.get(folded)
        if first is not None:
            _count_repeat(report, record, email, first)
            continue
        target = TARGET.get(record.kind)
        first_here[folded] = (record.file, record.line, target.value if target else None)
        if target is None:
            report.nonsubscribed += 1
            continue
        rows.append(_Row(record, email))
    seen.add((folded, *first) for folded, first in first_here.items())
    return rows


def _count_repeat(report: MailchimpReport, record: MailchimpMember, email: str,
                  first: First) -> None:
    first_file, first_line, first_target = first
    if first_file == record.file:
        report.duplicates += 1
        return
    if record.kind is MemberKind.NONSUBSCRIBED:
        report.nonsubscribed += 1
    # Files come most restrictive first, so the first one seen is the state that holds.
    kept = first_target if first_target is not None else "skipped"
    report.in_two_files.append(TwoFiles(email, (first_file, first_line),
                                        (record.file, record.line), kept))


def _import_chunk(session: Session, rows: list[_Row], report: MailchimpReport, *, secret: str,
                  dry_run: bool) -> None:
    rows = _drop_forgotten(session, rows, report, secret=secret)
    existing = _existing(session, [row.email for row in rows])
    new: list[_Row] = []
    for row in rows:
        found = existing.get(row.email.lower())
        if found is None:
            new.append(row)
        else:
            _update_existing(session, found, row, report, dry_run=dry_run)
    if dry_run:
        for row in new:
            report.added[TARGET[row.member.kind].value] += 1
        session.rollback()  # end the read transaction: a long dry run holds nothing open
        return
    _insert_new(session, new, report)
    session.commit()


def _drop_forgotten(session: Session, rows: list[_Row], report: MailchimpReport, *,
                    secret: str) -> list[_Row]:
    # The CSV import's own check, so both imports always agree on who was forgotten.
    by_email = {row.email: row for row in rows}
    found = ImportReport()
    kept = _drop_forgotten_candidates(
        session, [_Candidate(row.member.line, row.email, None) for row in rows], found,
        secret=secret)
    for _line, email in found.forgotten:
        row = by_email[email]
        report.forgotten.append((row.member.file, row.member.line, email))
    return [by_email[candidate.email] for candidate in kept]


def _existing(session: Session, emails: list[str]) -> dict[str, tuple[int, str]]:
    """lower(email) → (id, status) of the addresses already here: plain rows, no ORM objects
    (a re-run reads every address once)."""
    if not emails:
        return {}
    table = table_of(Subscriber)
    found = session.execute(select(table.c.id, table.c.email, table.c.status).where(
        func.lower(table.c.email).in_([e.lower() for e in emails])))
    return {email.lower(): (subscriber_id, status) for subscriber_id, email, status in found}


def _update_existing(session: Session, existing: tuple[int, str], row: _Row,
                     report: MailchimpReport, *, dry_run: bool) -> None:
    subscriber_id, status = existing
    current = SubscriberStatus(status)
    target, event = TARGET[row.member.kind], EVENT[row.member.kind]
    if current is target:
        report.unchanged += 1
    elif allows(current, target, event, source=SOURCE):
        # pending is no decision yet: Mailchimp's consent or refusal settles it; else only tighten
        report.changed[f"{current.value} → {target.value}"] += 1
        if not dry_run:
            change_status(session, _reader(session, subscriber_id), target, event=event,
                          source=SOURCE, detail=consent_detail(row.member), commit=False)
    else:
        report.kept[current.value] += 1


def _reader(session: Session, subscriber_id: int) -> Subscriber:
    """A reader the import found a moment ago (a forget in between would have removed it)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise StoreError(f"reader #{subscriber_id} left the database during the import; "
                         "run the same command again to finish it")
    return subscriber


def _insert_new(session: Session, new: list[_Row], report: MailchimpReport) -> None:
    if not new:
        return
    now = utcnow()
    by_email = {row.email: row for row in new}
    inserted = insert_rows(session, table_of(Subscriber),
                           [_subscriber_values(row, now) for row in new],
                           ignore_conflicts=True, returning=("id", "email"))
    if inserted:
        insert_rows(session, table_of(SubscriberChange), [
            _creation_values(subscriber_id, by_email[email].member, now)
            for subscriber_id, email in inserted])
    for _id, email in inserted:
        report.added[TARGET[by_email[email].member.kind].value] += 1
    # Inserted meanwhile by someone else (the web form): theirs stands.
    report.unchanged += len(new) - len(inserted)


def reader_times(member: MailchimpMember, now: datetime) -> tuple[datetime, datetime]:
    """(signed up, confirmed) as Mailchimp knew them: OPTIN_TIME and CONFIRM_TIME, each standing
    in for the other when missing; when both are, the time they left (for who left) or the
    import time. The earlier is the
    sign-up, so nobody signs up after they confirmed (older exports have such rows)."""
    known = [t for t in (member.optin_time, member.confirm_time) if t is not None]
    if not known:
        return member.left_at or now, now
    return min(known), member.confirm_time or member.optin_time or now


def _subscriber_values(row: _Row, now: datetime) -> dict:
    member = row.member
    status = TARGET[member.kind]
    signed_up, confirmed = reader_times(member, now)
    mailchimp = {k: v for k, v in (("leid", member.leid), ("euid", member.euid),
                                   ("tags", member.tags)) if v}
    attrs = {**member.merge_fields, "mailchimp": mailchimp} if mailchimp else member.merge_fields
    return {"email": row.email, "status": status.value, "created_at": signed_up,
            "updated_at": now,
            "confirmed_at": max(confirmed, signed_up) if status is SubscriberStatus.ACTIVE
            else None,
            "source": SOURCE, "signup_ip": member.optin_ip, "confirm_ip": member.confirm_ip,
            "attrs": _ATTRS_JSON(attrs) if attrs else None}


def _creation_values(subscriber_id: int, member: MailchimpMember, now: datetime) -> dict:
    # ``at`` is when mailer took the reader in (the figures count it as an import that week);
    # when they opted in, confirmed or left Mailchimp is in the detail, and on the reader.
    status = TARGET[member.kind]
    return {"subscriber_id": subscriber_id, "at": now, "from_status": None,
            "to_status": status.value, "source": SOURCE,
            "detail": _DETAIL_JSON(consent_detail(member))}


def consent_detail(member: MailchimpMember) -> dict:
    """What the history keeps of a Mailchimp row: consent, and when and why they left."""
    detail = {
        "file": member.file, "line": member.line, "mailchimp_status": member.kind.value,
        "optin_time": member.optin_time, "optin_ip": member.optin_ip,
        "confirm_time": member.confirm_time, "confirm_ip": member.confirm_ip,
        "leid": member.leid, "euid": member.euid,
    }
    if member.kind is MemberKind.UNSUBSCRIBED:
        detail.update(unsubscribed_at=member.left_at, reason=member.reason,
                      reason_other=member.reason_other)
    if member.kind is MemberKind.CLEANED:
        detail.update(cleaned_at=member.left_at)
    if member.kind in (MemberKind.UNSUBSCRIBED, MemberKind.CLEANED):
        detail.update(campaign=member.campaign_title, campaign_id=member.campaign_id)
    return {key: value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in detail.items() if value is not None}
