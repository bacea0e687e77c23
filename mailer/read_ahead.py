"""Read a large file in a second process while this one writes what was read (issue 23 §2).

A big import spends its time in two halves: Python reading the file (CSV parsing, address
checks, attrs as JSON) and the database writing the rows. A thread cannot overlap them: both
halves hold the interpreter lock nearly all the time (measured: a reading thread made a
200,000-row import no faster). :func:`read_ahead` runs the reading in a forked child process
instead, which sends each item (a chunk of rows, pickled) through a pipe as it is ready; the
pipe's buffer bounds how far ahead it gets, so memory stays flat whatever the file's size.

The child touches nothing the parent holds (it opens its own files; it never uses the
parent's database connections) and ends with ``os._exit``, so it closes none of them. An
error in the child is raised here at the item where it happened; Ctrl-C reaches the parent
(the child ignores it), and a parent that stops early for any reason stops the child before
:func:`read_ahead` returns. Where ``fork`` is missing, the producer runs in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Generator
from typing import TypeVar

Item = TypeVar("Item")

_DONE = "read-ahead: done"


class _Failed:
    """An error raised in the child, carried over the pipe."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(produce: Callable[[], Generator[Item, None, None]]) -> Generator[Item, None, None]:
    """The items of ``produce()``, made in a child process while the caller uses the last."""
    if "fork" not in multiprocessing.get_all_start_methods():
        yield from produce()
        return
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_produce_into, args=(produce, sending, receiving),
                            daemon=True, name="mailer-read-ahead")
    child.start()
    sending.close()
    try:
        while True:
            try:
                item = receiving.recv()
            except EOFError:  # the child died without a word (killed, out of memory)
                raise RuntimeError("the import's reading process ended unexpectedly "
                                   f"(exit code {child.exitcode}); run the same command "
                                   "again") from None
            if isinstance(item, str) and item == _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        receiving.close()
        if child.is_alive():
            child.terminate()  # SIGTERM: the child's with-blocks clean up after it
        child.join()


def _produce_into(produce: Callable[[], Generator[object, None, None]], sending,
                  receiving) -> None:
    # the parent's end of the pipe, inherited by the fork: closed, so that once the parent is
    # gone (even by SIGKILL) a send fails at once instead of waiting for a reader forever
    receiving.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    items = produce()
    try:
        for item in items:
            sending.send(item)
        sending.send(_DONE)
    except (BrokenPipeError, SystemExit):
        pass  # the parent stopped listening (it ended, even by SIGKILL), or stopped us
    except BaseException as error:  # carried to the parent, raised there
        try:
            sending.send(_Failed(error))
        except Exception:  # an error that cannot be pickled: its text then
            sending.send(_Failed(RuntimeError(f"{type(error).__name__}: {error}")))
    finally:
        items.close()  # the producer's own with-blocks clean up (its scratch files) first
        sending.close()
    os._exit(0)


__all__ = ["read_ahead"]
