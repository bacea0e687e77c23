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
    # What the warning is about, for mailer-check.toml's patterns: the link's address, or the
    # heading's text. Empty when there is nothing an editor could accept by name.
    subject: str = ""

    def as_line(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"

    def as_github_annotation(self) -> str:
        """The finding as a GitHub workflow command, escaped by GitHub's rules: the message and
        the file name are the issue's and the pull request's words, never a command of theirs."""
        return (f"::{self.severity} file={github_property(self.path)},line={self.line}"
                f"::{github_data(self.message)}")

    def as_dict(self) -> dict:
        return asdict(self)


def github_data(text: str) -> str:
    """A workflow command's message: a CR or LF would end the command and start another line."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """A workflow command's property value: also no ':' (ends the properties) or ',' (the next)."""
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


def error(path: str, line: int, code: str, message: str) -> Finding:
    return Finding(path, line, "error", code, message)


def warning(path: str, line: int, code: str, message: str, subject: str = "") -> Finding:
    return Finding(path, line, "warning", code, message, subject)


def shorten(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
