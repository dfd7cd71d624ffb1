"""The ``.keras`` format (Keras 3), loaded with ``safe_mode=True``."""

from __future__ import annotations

from pathlib import Path

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import MLPWeights


def write(weights: MLPWeights, path: str | Path) -> None:
    """Save ``weights`` as a Keras model (not atomic; see rps_infer.convert)."""
    from rps_infer.nets import keras_mlp

    keras_mlp.build(weights).save(str(path))


def read_model(path: str | Path):  # -> keras.Model
    """Load a ``.keras`` file in safe mode (no arbitrary code or lambdas)."""
    from rps_infer.nets import keras_mlp

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, "<file>", "an existing .keras file", "no such file")
    try:
        return keras_mlp.keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # keras raises ValueError/OSError/zipfile errors
        raise ModelFormatError(path, "<file>", "a Keras 3 model file",
                               str(exc).splitlines()[0][:200]) from None


def read_weights(path: str | Path) -> MLPWeights:
    """The float64 MLP weights of a ``.keras`` file built by rps_infer."""
    from rps_infer.nets import keras_mlp

    return keras_mlp.weights_of(read_model(path))
