"""Prove, then write: the one place a new model file comes into existence.

:func:`write_proven` lets a writer fill a temp file beside the target, proves the temp
file against its source, and renames it into place only when the proof passes. On a
failed proof (or any error, or Ctrl-C) no file is left behind and the
:class:`~rps_infer.errors.ParityError` carries the full report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rps_infer import progress
from rps_infer.errors import ParityError
from rps_infer.util import atomic_write
from rps_infer.verify import ParityReport


def write_proven(out: str | Path, write: Callable[[Path], object], prove: Callable[[Path], ParityReport],
                 refusal: str) -> ParityReport:
    """Write ``out`` with ``write(tmp)``, keep it only if ``prove(tmp)`` passes; returns the
    report. ``refusal`` says what a failed proof means (``it does not match X``)."""
    report: ParityReport | None = None

    def write_and_prove(tmp: Path) -> None:
        nonlocal report
        progress.step(f"writing {Path(out).name}")
        write(tmp)
        progress.step(f"proving {Path(out).name} computes what its source does")
        report = prove(tmp)
        if not report:
            raise ParityError(f"refusing to write {out}: {refusal}", report)

    atomic_write(out, write_and_prove)
    return report
