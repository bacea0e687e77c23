"""From a rendered fault back to the source line that made it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"`+[^`\n]*`+")
_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


class Locator:
    """Finds the source line a rendered fault came from.

    Code blocks, inline code and editor comments are blanked first (they never render as links).
    Each needle keeps its own cursor, so the second identical link maps to the second line with
    it, in reading order like the rendered HTML.
    """

    def __init__(self, lines: list[str]) -> None:
        self.lines = _searchable(lines)
        self.body_start = next((i + 1 for i, line in enumerate(lines) if not line.strip()), 1)
        self._cursor: Counter[str] = Counter()

    def find(self, needle: str) -> int:
        start = self._cursor[needle]
        for index in (*range(start, len(self.lines)), *range(0, start)):
            if index >= self.body_start - 1 and needle in self.lines[index]:
                self._cursor[needle] = index + 1
                return index + 1
        return self.body_start + 1 if self.body_start < len(self.lines) else 1

    def headings(self) -> Iterable[tuple[int, int, str]]:
        for index in range(self.body_start, len(self.lines)):
            line = self.lines[index]
            match = _ATX_HEADING.match(line)
            if match:
                yield index + 1, len(match[1]), _MARKDOWN_LINK.sub(r"\1", match[2])
            elif _is_setext_underline(line, self.lines[index - 1]):
                yield index, 1 if "=" in line else 2, self.lines[index - 1].strip()


def _is_setext_underline(line: str, previous: str) -> bool:
    return (bool(re.fullmatch(r"\s{0,3}(=+|-+)\s*", line)) and bool(previous.strip())
            and not previous.lstrip().startswith(("#", "-", "*", "+", "|", ">")))


def _searchable(lines: list[str]) -> list[str]:
    out, in_fence, in_comment = [], False, False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append("")
            continue
        if in_fence or line.startswith("    ") and (not out or not out[-1].strip()):
            out.append("")
            continue
        line, in_comment = _without_comments(line, in_comment)
        out.append(_CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line))
    return out


def _without_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    kept = ""
    while line:
        if in_comment:
            end = line.find("-->")
            if end < 0:
                return kept, True
            line, in_comment = line[end + 3:], False
        else:
            start = line.find("<!--")
            if start < 0:
                return kept + line, False
            kept, line, in_comment = kept + line[:start], line[start + 4:], True
    return kept, in_comment
