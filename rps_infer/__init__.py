"""rps_infer: convert models to ONNX, prove parity, serve and benchmark them.

Importing the package is cheap: torch and tensorflow are imported only by the
modules that need them, when they are first used. The public API is re-exported here
lazily (PEP 562): ``verify_models``, ``ParityReport``, ``open_model``, ``ModelHints``,
``open_backend``, ``assert_parity`` (and :func:`rps_infer.convert.convert`).
"""

from rps_infer.version import VERSION

__version__ = VERSION

_PUBLIC = {
    "verify_models": "rps_infer.api",
    "ParityReport": "rps_infer.verify",
    "open_model": "rps_infer.formats",
    "ModelHints": "rps_infer.formats",
    "open_backend": "rps_infer.runtime",
    "assert_parity": "rps_infer.testing",
}


def __getattr__(name: str):
    """The public API, imported on first use."""
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'rps_infer' has no attribute {name!r}")


__all__ = [*_PUBLIC, "__version__"]
