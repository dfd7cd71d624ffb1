"""Keras 3 files (``.keras``, loaded with ``safe_mode=True``; legacy ``.h5``) and TensorFlow
SavedModel folders (``tf.saved_model.load``, the ``serving_default`` signature).

Any Keras model is read as it is; one that is the RPS MLP (Dense(relu) -> Dense(softmax
or sigmoid)) also yields its weights, so parity can be judged layer by layer.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from rps_infer.errors import ModelFormatError, UnsupportedModelError
from rps_infer.nets.mlp import MLPWeights

SERVING_SIGNATURE = "serving_default"


def write(weights: MLPWeights, path: str | Path) -> None:
    """Save ``weights`` as a Keras model (not atomic; see rps_infer.convert)."""
    from rps_infer.nets import keras_mlp

    keras_mlp.build(weights).save(str(path))


def variant_of(path: Path) -> str:
    """``keras``, ``h5`` or ``savedmodel``."""
    if path.is_dir():
        return "savedmodel"
    return "h5" if path.suffix.lower() in (".h5", ".hdf5") else "keras"


def read_model(path: str | Path) -> Any:
    """The Keras model in a ``.keras`` (safe mode: no arbitrary code, no lambdas) or ``.h5`` file."""
    from rps_infer.nets import keras_mlp

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, "<file>", "an existing Keras file", "no such file")
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):  # Keras says "File not found"
        raise ModelFormatError(path, "<file>", "a Keras 3 model file (a .keras file is a zip archive)",
                               "a file that is not a zip archive")
    try:
        return keras_mlp.keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # keras raises ValueError/OSError/zipfile errors
        raise ModelFormatError(path, "<file>", "a Keras 3 model file (.keras, or a legacy .h5)",
                               str(exc).splitlines()[0][:200]) from None


def read_saved_model(path: str | Path) -> Any:
    """The ``serving_default`` signature of a SavedModel folder (a concrete function)."""
    import tensorflow as tf

    path = Path(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow's own loader errors
        raise ModelFormatError(path, "<folder>", "a TensorFlow SavedModel", str(exc).splitlines()[0][:200]) from None
    signatures = dict(getattr(loaded, "signatures", {}))
    if SERVING_SIGNATURE not in signatures:
        raise ModelFormatError(path, "signatures", f"a {SERVING_SIGNATURE!r} signature", repr(sorted(signatures)))
    signature = signatures[SERVING_SIGNATURE]
    signature.rps_owner = loaded  # the function needs its variables alive
    return signature


def declarations(path: Path) -> tuple[MLPWeights | None, dict[str, str], str]:
    """(MLP weights if it is the RPS MLP, metadata, variant) of a Keras file or SavedModel."""
    variant = variant_of(path)
    if variant == "savedmodel":
        return None, {}, variant
    from rps_infer.nets import keras_mlp

    model = read_model(path)
    try:
        return keras_mlp.weights_of(model), {}, variant
    except UnsupportedModelError:
        return None, {}, variant  # any other Keras model: run as it is


def read_weights(path: str | Path) -> MLPWeights:
    """The float64 MLP weights of a Keras MLP file."""
    from rps_infer.nets import keras_mlp

    return keras_mlp.weights_of(read_model(path))


def parameter_count(model: Any) -> int:
    """Number of weights of a Keras model or a SavedModel signature's variables."""
    variables = model.weights if hasattr(model, "weights") else model.rps_owner.variables
    return int(sum(int(v.numpy().size) for v in variables))
