"""Framework noise kept out of a command's output (``--debug`` shows all of it).

TensorFlow's C++ core writes absl log lines straight to file descriptor 2 when it is first
imported ("oneDNN custom operations are on ...", "All log messages before
absl::InitializeLog() ..."). In TensorFlow 2.21 no setting silences them (tried:
``TF_CPP_MIN_LOG_LEVEL=3``, ``ABSL_MIN_LOG_LEVEL``, ``GLOG_minloglevel``), and written by C
they bypass ``sys.stderr``. So :func:`quiet_frameworks` installs an import hook that runs
the first import of each package in :data:`NOISY` with descriptor 2 pointed at a temporary
file; what it caught is kept in :data:`captured`. It also hides Python warnings raised
outside ``rps_infer`` (deprecations inside the frameworks, which a user cannot act on).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

NOISY = frozenset({"tensorflow", "keras", "tf_keras"})
captured: list[str] = []  # what the quiet imports printed, in order


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Point file descriptor 2 at a temporary file for the block; append what landed there to
    :data:`captured`. (``sys.stderr`` keeps writing to the same descriptor: Python's own
    messages in the block are caught too, which is why it wraps imports only.)"""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            if text:
                captured.append(text)


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's module code with descriptor 2 captured."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def __getattr__(self, name: str):  # get_resource_reader, is_package, get_code ...
        return getattr(self.inner, name)

    def exec_module(self, module) -> None:
        with native_stderr_captured():
            self.inner.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds the :data:`NOISY` packages as usual and hands them a :class:`_QuietLoader`."""

    def find_spec(self, name, path, target=None):
        if name not in NOISY:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_frameworks() -> None:
    """Capture what the frameworks print on import and hide warnings raised outside
    ``rps_infer`` (for the rest of this process)."""
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"rps_infer(\.|$)")
