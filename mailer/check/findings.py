"""One finding of `mailer check`: a file, a line, a severity, a stable code and a message."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    severity: str  # "error" or "warning"
    code: str  # a stable short name for tools, e.g. "unparsed-link"
    message: str

    def as_line(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"

    def as_github_annotation(self) -> str:
        # Workflow commands end at a newline; %, CR and LF must be escaped in the message.
        text = self.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::{self.severity} file={self.path},line={self.line}::{text}"

    def as_dict(self) -> dict:
        return asdict(self)


def error(path: str, line: int, code: str, message: str) -> Finding:
    return Finding(path, line, "error", code, message)


def warning(path: str, line: int, code: str, message: str) -> Finding:
    return Finding(path, line, "warning", code, message)


def shorten(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
