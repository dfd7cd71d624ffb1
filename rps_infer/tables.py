"""Every table the project prints, rendered by one helper on rich.

Tables are plain text (no colour, no terminal codes) unless printed to a terminal, so
they read the same in a CI log, a pytest section and a file.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

NUMERIC = "right"


def render(columns: Sequence[str], rows: Sequence[Sequence[object]], *, title: str | None = None,
           numeric: Sequence[str] = (), width: int = 160, terminal: bool = False) -> str:
    """``rows`` under ``columns`` as a text table; columns named in ``numeric`` align right.

    ``terminal=True`` keeps rich's styling when stdout is a terminal.
    """
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, justify=NUMERIC if name in numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))  # never markup: ids hold [..]
    out = io.StringIO()
    styled = terminal and sys.stdout.isatty()
    Console(file=out, width=width, force_terminal=styled, no_color=not styled, highlight=False,
            soft_wrap=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())


def us(seconds: float | None) -> str:
    """Seconds as ``12.3us`` or ``4.56ms``; ``-`` for None."""
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:,.1f}us" if seconds < 1e-2 else f"{seconds * 1e3:,.2f}ms"
