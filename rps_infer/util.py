"""Small helpers shared across the package."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from rps_infer import signals


def atomic_write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Let ``writer`` fill a temp file beside ``path``, then rename it into place.

    The temp file keeps ``path``'s suffix because some writers (Keras) insist on it.
    If ``writer`` raises, or a Ctrl-C / SIGTERM arrived meanwhile (even one a library caught),
    the temp file is removed and ``path`` is untouched, so a failed or interrupted write never
    leaves a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # writers such as torch.onnx.export want to create the file themselves
        writer(tmp)
        signals.check()  # a Ctrl-C some library swallowed still wins: no file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
