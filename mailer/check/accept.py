"""The warnings a newsletter accepts as its standard: `mailer-check.toml`.

TWiR links its own repository and social accounts in every issue's header and footer, and its
"Updates from the Rust Project" section goes from `##` to `####`: warned about every week, such
findings teach editors to ignore warnings. The editors list what is standard instead, once:

    [accept]
    duplicate-link = ["https://github.com/rust-lang/this-week-in-rust"]
    heading-skip = ["Compiler"]

Each key is a warning's code, each value shell-style patterns (``*``, ``?``, ``[…]``) matched
against what the warning is about: the link's address, or the heading's text. Errors are never
accepted: an issue that would reach readers broken fails whatever the file says.

The file is found beside the issue or in a folder above it, up to the repository's top (the
folder with ``.git``); ``mailer check --accept FILE`` names one instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from mailer.check.findings import Finding
from mailer.errors import ConfigError

FILE_NAME = "mailer-check.toml"
# The warnings an editor may accept, by code; every other code is an error's or unknown.
ACCEPTABLE = frozenset({"duplicate-link", "insecure-link", "url-shortener", "heading-skip"})


@dataclass(frozen=True)
class Accepted:
    """The patterns of one mailer-check.toml, by warning code."""

    source: Path | None = None
    patterns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def accepts(self, finding: Finding) -> bool:
        if finding.severity != "warning" or not finding.subject:
            return False
        return any(fnmatchcase(finding.subject, pattern)
                   for pattern in self.patterns.get(finding.code, ()))


NOTHING_ACCEPTED = Accepted()


def find_accept_file(issue: Path) -> Path | None:
    """The mailer-check.toml nearest to ``issue``: its folder, then each parent up to the
    repository's top (or the file system's)."""
    for folder in Path(issue).resolve().parents:
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def load_accepted(path: Path) -> Accepted:
    """Read one mailer-check.toml; a file that cannot be used is one error naming it."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    section = data.get("accept", {})
    unknown_tables = sorted(set(data) - {"accept"})
    if unknown_tables or not isinstance(section, dict):
        raise ConfigError(f"{path}: only an [accept] table is read here"
                          + (f", not {', '.join(unknown_tables)}" if unknown_tables else ""))
    patterns = {}
    for code, values in section.items():
        if code not in ACCEPTABLE:
            raise ConfigError(f"{path}: {code!r} is not a warning that can be accepted "
                              f"(these can: {', '.join(sorted(ACCEPTABLE))}; errors never)")
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"{path}: {code} must be a list of patterns (text)")
        patterns[code] = tuple(values)
    return Accepted(Path(path), patterns)
