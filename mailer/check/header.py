"""Pelican headers of a TWiR issue: ``Key: value`` lines up to the first blank line."""

from __future__ import annotations

import re

from mailer.check.findings import Finding, error

REQUIRED_HEADERS = ("title", "date")

_HEADER_LINE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(?P<value>.*)$")
_CONTINUATION = re.compile(r"^ {4,}\S")
_TITLE_NUMBER = re.compile(r"(\d+)\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")


def check_header(path: str, lines: list[str]) -> list[Finding]:
    """Pelican headers: ``Key: value`` lines up to the first blank line."""
    findings: list[Finding] = []
    fields: dict[str, tuple[str, int]] = {}
    for index, line in enumerate(lines):
        number = index + 1
        if not line.strip():
            break
        if _CONTINUATION.match(line) and fields:
            continue
        match = _HEADER_LINE.match(line)
        if match is None:
            if fields:  # Markdown would end the header here and show the rest as text
                findings.append(error(path, number, "malformed-header",
                                       f"header line {line.strip()[:60]!r} is not 'Key: value'; "
                                       "the header ends at the first blank line"))
            break
        key, value = match["key"].lower(), match["value"].strip()
        if key in fields:
            findings.append(error(path, number, "malformed-header",
                                   f"{match['key']} is given twice (first on line {fields[key][1]})"))
        if not value:
            findings.append(error(path, number, "malformed-header", f"{match['key']}: has no value"))
        fields.setdefault(key, (value, number))
    findings.extend(_header_field_findings(path, fields, lines))
    return findings


def _header_field_findings(path: str, fields: dict[str, tuple[str, int]], lines: list[str]) -> list[Finding]:
    findings = []
    for key in REQUIRED_HEADERS:
        if key not in fields:
            first = lines[0][:60] if lines else ""
            findings.append(error(path, 1, "malformed-header",
                                   f"no '{key.title()}:' header line (the file starts with {first!r})"))
    if "date" in fields and fields["date"][0] and not _DATE.match(fields["date"][0]):
        value, line = fields["date"]
        findings.append(error(path, line, "malformed-header",
                               f"Date {value!r} is not a date (write YYYY-MM-DD or YYYY-MM-DD HH:MM)"))
    findings.extend(_number_findings(path, fields))
    return findings


def _number_findings(path: str, fields: dict[str, tuple[str, int]]) -> list[Finding]:
    title, title_line = fields.get("title", ("", 1))
    title_match = _TITLE_NUMBER.search(title)
    if "number" not in fields:
        if title and not title_match:
            return [error(path, title_line, "malformed-header",
                           "no issue number: add 'Number: N' or end the Title with the number")]
        return []
    value, line = fields["number"]
    if not value.isascii() or not value.isdigit():
        return [error(path, line, "malformed-header", f"Number {value!r} is not a whole number")]
    if title_match and int(title_match[1]) != int(value):
        return [error(path, line, "malformed-header",
                       f"Number {value} disagrees with the Title, which ends in {title_match[1]}")]
    return []
