"""Ctrl-C and SIGTERM always win: a command stops with 130 / 143 and leaves no output file.

:func:`handling` installs handlers for the length of a command that record the signal and
raise (KeyboardInterrupt, :class:`Terminated`). A library that catches the exception and
carries on (exporters have been seen to swallow a Ctrl-C: the file was written and the exit
code was 0) cannot undo the record: :func:`check` raises again before a file is renamed into
place (:func:`rps_infer.util.atomic_write`), and the exit code says what was received.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: list[int] = []


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt: no ``except Exception`` eats it)."""


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated


def _on_signal(signum, frame) -> None:
    _received.append(signum)
    _raise_for(signum)


def check() -> None:
    """Raise again if a signal arrived during this command (whoever caught it the first time)."""
    if _received:
        _raise_for(_received[0])


def received_exit_code() -> int | None:
    """130 / 143 if SIGINT / SIGTERM arrived during this command, else None."""
    return EXIT_CODES[_received[0]] if _received else None


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Record and raise on SIGINT and SIGTERM inside the block (main thread only; the
    previous handlers come back after)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in EXIT_CODES}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def exit_process(code: int) -> NoReturn:
    """``sys.exit(code)`` that keeps its code under ``python -m`` after an interrupt.

    CPython sets an "unhandled KeyboardInterrupt" flag when code run from a string
    (``exec``/``eval`` of source text, which dataclasses, namedtuple and torch's code
    generators all do) ends in a KeyboardInterrupt, even if a caller catches it. ``python -m``
    checks that flag after the interpreter finalizes and then kills itself with SIGINT: the
    exit status is -2, not the 130 the command returned (seen: 3 of 60 Ctrl-Cs during a U-Net
    conversion). Every string eval clears the flag on entry, so one harmless eval resets it.
    """
    exec("None")  # resets the flag (see above); evaluates nothing
    sys.exit(code)
