"""Progress on long work: a rich bar on a terminal, plain status lines in a log, nothing
with ``--quiet``.

Library code says what it is doing with :func:`step` (a phase, optionally ``done`` of
``total``); it costs nothing unless the command line opened a bar with :func:`shown`, which
it does only when stdout and stderr are terminals and ``--quiet`` was not given. Multi-step
measurements (bench cases, soak windows) also write :func:`status` lines, which a log keeps
when there is no terminal to draw a bar on.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

_bar: list = []  # [(rich Progress, task id)] while a bar is shown
_quiet: list[bool] = [False]


def wanted(quiet: bool) -> bool:
    """Whether a command should draw a bar: both streams are terminals and not ``--quiet``."""
    return not quiet and sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def shown(enabled: bool, *, quiet: bool = False, console=None) -> Iterator[None]:
    """Draw a bar on stderr (or ``console``) for the block when ``enabled``; with ``quiet``
    :func:`status` lines are dropped too. The bar disappears when the block ends."""
    _quiet[0] = quiet
    if not enabled:
        try:
            yield
        finally:
            _quiet[0] = False
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                   console=console or Console(stderr=True), transient=True)
    with bar:
        _bar.append((bar, bar.add_task("starting", total=None)))
        try:
            yield
        finally:
            _bar.pop()
            _quiet[0] = False


def step(message: str, done: int | None = None, total: int | None = None) -> None:
    """Show ``message`` (and ``done`` of ``total``) on the bar, if one is shown."""
    if _bar:
        bar, task = _bar[-1]
        bar.update(task, description=message, completed=done or 0, total=total, refresh=True)  # every phase seen


def status(message: str) -> None:
    """A status line of a long measurement: on the bar when one is shown, else a line on
    stderr (none with ``--quiet``)."""
    if _bar:
        step(message)
    elif not _quiet[0]:
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()
