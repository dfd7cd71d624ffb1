"""The Python API for a user's own scripts and test suites: is this candidate the same function?

    import rps_infer
    report = rps_infer.verify_models("model.pt", "model.onnx", inputs={"image": x})
    assert report, report.render(layers=True)

Models are file paths (any format :mod:`rps_infer.formats` reads) or in-memory objects: a
``torch.nn.Module``, a ``keras.Model``, an ``onnx.ModelProto``, or any
:class:`~rps_infer.backends.base.Backend`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import rps_infer.defaults as defaults
from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.compare import Tolerance
from rps_infer.errors import UnsupportedModelError
from rps_infer.formats import ModelFile, ModelHints, open_model
from rps_infer.inputs import InputChoice, InputFile
from rps_infer.tensors import TensorSpec
from rps_infer.verify import ParityReport, compare_backends

Model = Any  # a path, ModelFile, torch.nn.Module, keras.Model, onnx.ModelProto or Backend


def verify_models(reference: Model, candidate: Model, *, inputs: Mapping[str, np.ndarray] | str | Path | None = None,
                  tolerance: str | Tolerance | None = None, batch_sizes: Sequence[int] = defaults.PARITY_BATCH_SIZES,
                  hints: ModelHints | None = None, input_specs: Sequence[TensorSpec] | None = None,
                  seed: int = 0) -> ParityReport:
    """Run both models on the same inputs and compare them with THE comparator.

    Args:
        reference, candidate: what to compare (see :data:`Model`).
        inputs: name -> array (one batch), an ``.npz`` / folder of ``.npy``, or None: generated
            from the reference's input specs at ``batch_sizes``.
        tolerance: a preset name (``fp32``, ``fp16``, ``image-fp32``...) or a Tolerance
            (default: what the files name, else fp32).
        hints: for files that do not describe themselves (a ``state_dict``'s class, input shapes).
        input_specs: the inputs of an in-memory ``torch.nn.Module`` (default: from ``inputs``).

    Returns:
        A :class:`~rps_infer.verify.ParityReport`: truthy when they agree; ``render(layers=True)``
        explains where they differ and the likely cause.
    """
    given = None
    if isinstance(inputs, Mapping):
        given = InputFile.of(inputs)
    elif inputs is not None:
        given = InputFile(inputs)
    input_specs = input_specs or (given.specs() if given is not None else None)
    with tempfile.TemporaryDirectory(prefix="rps-verify-") as tmp:
        ref_file, ref = _backend(reference, hints, input_specs, Path(tmp) / "reference.onnx")
        cand_file, cand = _backend(candidate, hints, input_specs, Path(tmp) / "candidate.onnx")
        files = [f for f in (ref_file, cand_file) if f is not None]
        preset = tolerance or (files[-1].tolerance if files else "fp32")
        with ref, cand:
            return compare_backends(ref, cand, batch_sizes=batch_sizes, tol=preset,
                                    weights=ref_file.weights if ref_file is not None else None, seed=seed,
                                    inputs=InputChoice(ref_file.inputs if ref_file else None, file=given),
                                    reference_label=_label(reference, ref_file),
                                    candidate_label=_label(candidate, cand_file))


def _backend(model: Model, hints: ModelHints | None, specs, scratch: Path) -> tuple[ModelFile | None, Backend]:
    """(the model file, if it is one; a backend running the model)."""
    if isinstance(model, Backend):
        return None, model
    if isinstance(model, (str, Path, ModelFile)):
        file = model if isinstance(model, ModelFile) else open_model(model, hints=hints)
        return file, registry.for_model(file)
    kind = f"{type(model).__module__}.{type(model).__name__}"
    if hasattr(model, "SerializeToString") and hasattr(model, "graph"):  # an onnx.ModelProto
        scratch.write_bytes(model.SerializeToString())
        file = open_model(scratch)
        return file, registry.for_model(file)
    if hasattr(model, "state_dict") and callable(model):  # a torch.nn.Module
        return None, registry.create("pyt", model, input_specs=specs)
    if hasattr(model, "inputs") and hasattr(model, "outputs") and callable(model):  # a keras.Model
        return None, registry.create("tf", model)
    raise UnsupportedModelError(f"cannot compare a {kind}: give a model file path, a torch.nn.Module, a "
                                "keras.Model, an onnx.ModelProto or an rps_infer Backend")


def _label(model: Model, file: ModelFile | None) -> str:
    return file.label if file is not None and not str(file.path).endswith(("reference.onnx", "candidate.onnx")) \
        else type(model).__name__
