"""Native classifier files, read without unpickling anything.

- scikit-learn models are saved with ``skops``; :func:`read_native` lists the types the
  file would construct and refuses any that is not a scikit-learn type before loading;
- XGBoost models are saved in XGBoost's own JSON format (a ``.json`` with a ``learner``).
"""

from __future__ import annotations

from pathlib import Path

from rps_infer.errors import ModelFormatError

SKOPS_SUFFIX = ".skops"
TRUSTED_PREFIXES = ("sklearn.",)


def native_kind(path: str | Path) -> str | None:
    """``sklearn`` for a ``.skops`` file, ``xgboost`` for an XGBoost JSON model, else None."""
    path = Path(path)
    if path.suffix.lower() == SKOPS_SUFFIX:
        return "sklearn"
    if path.suffix.lower() == ".json" and path.is_file():
        with path.open("rb") as f:
            head = f.read(64)
        # XGBoost writes {"learner": ...} first; a Go JSON model has no such key.
        if head.lstrip().replace(b" ", b"").startswith(b'{"learner"'):
            return "xgboost"
    return None


def write_native(model, path: str | Path) -> None:
    """Save ``model`` in its safe native format (skops, or XGBoost JSON for XGBoost)."""
    path = Path(path)
    if is_xgboost(model):
        model.save_model(str(path))
        return
    import skops.io

    skops.io.dump(model, str(path))


def read_native(path: str | Path):
    """Load a native classifier; :class:`ModelFormatError` for anything else or untrusted types."""
    path = Path(path)
    kind = native_kind(path)
    if kind == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier()
        try:
            model.load_model(str(path))
        except Exception as exc:  # xgboost raises XGBoostError with the parser's message
            raise ModelFormatError(path, "<file>", "an XGBoost JSON model", str(exc).splitlines()[0]) from None
        return model
    if kind != "sklearn":
        raise ModelFormatError(path, "<suffix>", "a .skops scikit-learn model or an XGBoost .json model",
                               repr(path.suffix))
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=str(path))
    except Exception as exc:  # a file that is not a skops archive
        raise ModelFormatError(path, "<file>", "a skops archive", str(exc)[:200]) from None
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise ModelFormatError(path, "types", "scikit-learn types only", ", ".join(foreign))
    try:
        return skops.io.load(str(path), trusted=untrusted)
    except Exception as exc:
        raise ModelFormatError(path, "<file>", "a loadable skops archive", str(exc)[:200]) from None


def describe(model) -> dict[str, str]:
    """Framework and version of a native model (for reports)."""
    if is_xgboost(model):
        import xgboost

        return {"framework": "xgboost", "version": xgboost.__version__}
    import sklearn

    return {"framework": "scikit-learn", "version": sklearn.__version__}


def is_xgboost(model) -> bool:
    """Whether ``model`` is an XGBoost estimator."""
    return type(model).__module__.startswith("xgboost")

