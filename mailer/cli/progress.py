"""One progress reporter for every long command.

On a terminal: a rich progress bar on stderr that disappears when the work is done, so the
command's own output is what stays. Otherwise (cron mail, log files, pipes): a plain line every
``every`` seconds, such as ``imported 120,000 of 200,000 rows (60%)``, and a closing line, but
only when the work lasted long enough to print one: a quick command prints exactly what it
printed before. Progress goes to stderr, so it never mixes into CSV or JSON on stdout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console

from mailer.cli._app import err_console, settings

BAR_REFRESH = 0.1  # seconds between bar updates: advance() may be called for every row


class Progress:
    """``with Progress("imported", total=n, unit="rows") as progress: progress.advance(k)``."""

    def __init__(self, verb: str, total: int | None = None, *, unit: str = "rows",
                 every: float | None = None, console: Console | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.verb, self.total, self.unit = verb, total, unit
        self.done = 0
        self.console = console or err_console
        self.every = settings().progress_every if every is None else every
        self.clock = clock
        self.started = self.last_shown = clock()
        self.lines_printed = 0
        self._bar = None
        self._task = None

    # -- the caller's side ---------------------------------------------------------------------

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if self._bar is not None:
            if now - self.last_shown >= BAR_REFRESH:
                self._bar.update(self._task, completed=self.done, total=self.total)
                self.last_shown = now
        elif now - self.last_shown >= self.every:
            self._print(self.line())
            self.last_shown = now

    def line(self) -> str:
        """``imported 120,000 of 200,000 rows (60%)``, or without the total when unknown."""
        if self.total:
            share = min(100, round(100 * self.done / self.total))
            return f"{self.verb} {self.done:,} of {self.total:,} {self.unit} ({share}%)"
        return f"{self.verb} {self.done:,} {self.unit}"

    # -- context manager -----------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self.started = self.last_shown = self.clock()
        if self.console.is_terminal:
            self._start_bar()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
            return
        if self.lines_printed and exc_type is None:
            of = f" of {self.total:,}" if self.total else ""
            self._print(f"done: {self.verb} {self.done:,}{of} {self.unit} in "
                        f"{self.clock() - self.started:.1f} s")

    def _start_bar(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(TextColumn(f"[bold]{self.verb}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn(self.unit), TimeRemainingColumn(), console=self.console,
                        transient=True)
        self._bar.start()
        self._task = self._bar.add_task(self.verb, total=self.total)

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)
        self.lines_printed += 1


def count_lines(path) -> int | None:
    """Lines in a file, quickly (a progress total), the last one counted even without its line
    end, as csv counts them; None for stdin or an unreadable file."""
    if str(path) == "-":
        return None
    lines, last = 0, b"\n"
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    return lines + (last != b"\n")
