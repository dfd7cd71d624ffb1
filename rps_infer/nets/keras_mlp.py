"""The RPS MLP as a Keras 3 model (TensorFlow backend). Importing this imports keras."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

# Every backend builds its own tf.function; TensorFlow then warns about "retracing"
# although each function traces once. Its other warnings are errors or worse anyway.
tf.get_logger().setLevel("ERROR")

from rps_infer.nets.mlp import MLPWeights  # noqa: E402


def build(weights: MLPWeights) -> keras.Model:
    """A called Sequential model: Input 'input' -> Dense relu -> Dense softmax/sigmoid."""
    activation = "softmax" if weights.kind == "policy" else "sigmoid"
    model = keras.Sequential(
        [
            keras.Input((weights.input_size,), name="input", dtype="float32"),
            keras.layers.Dense(weights.hidden_size, activation="relu", name="hidden"),
            keras.layers.Dense(weights.output_size, activation=activation, name="output"),
        ],
        name=f"rps_{weights.kind}",
    )
    model.set_weights(weights.keras_weights())
    return model


def weights_of(model: keras.Model) -> MLPWeights:
    """Read :class:`MLPWeights` back from a model built by :func:`build`.

    The kind comes from the last layer's activation; anything else is refused.
    """
    from rps_infer.errors import UnsupportedModelError

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) != 2 or dense[0].activation.__name__ != "relu":
        layers = [layer.name for layer in model.layers]
        raise UnsupportedModelError(f"{model.name}: expected Dense(relu) -> Dense, got {layers}")
    last = dense[1].activation.__name__
    if last not in ("softmax", "sigmoid"):
        raise UnsupportedModelError(f"{model.name}: expected a softmax or sigmoid output, got {last}")
    kind = "policy" if last == "softmax" else "value"
    return MLPWeights.from_keras_weights(kind, model.get_weights())
