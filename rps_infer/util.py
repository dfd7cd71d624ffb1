"""Small helpers shared across the package."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Let ``writer`` fill a temp file beside ``path``, then rename it into place.

    The temp file keeps ``path``'s suffix because some writers (Keras) insist on it.
    If ``writer`` raises, the temp file is removed and ``path`` is untouched, so a
    failed write never leaves a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # writers such as torch.onnx.export want to create the file themselves
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
