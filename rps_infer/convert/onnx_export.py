"""Writing ONNX files from PyTorch (dynamo or legacy TorchScript exporter) and from Keras 3.

Every ONNX file of a model gets the same interface: input ``input``, output
``output``, batch dimension ``batch``, and rps_infer metadata (kind, exporter).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import onnx

from rps_infer.errors import UnsupportedModelError
from rps_infer.formats.onnxfile import METADATA_PREFIX

EXPORTERS = ("dynamo", "legacy")
DEFAULT_OPSET = 18
KERAS_DEFAULT_OPSET = 17
# The opsets each exporter writes (torch 2.13: dynamo builds opset 18 and converts up to
# 23, not down; TorchScript 7-20; Keras 3 through tf2onnx: up to 18). Checked again on the
# written file: an exporter that silently writes another opset is refused.
OPSETS = {"torch-dynamo": (18, 23), "torch-legacy": (7, 20), "keras": (7, 18)}
# What the exporters printed during the last export: shown by ``rps-infer --debug``.
log = logging.getLogger("rps_infer.export")


def check_opset(exporter: str, opset: int) -> None:
    """Refuse an opset ``exporter`` cannot write, in one line naming who can."""
    low, high = OPSETS[exporter]
    if not low <= opset <= high:
        others = "; ".join(f"{name} {a}-{b}" for name, (a, b) in OPSETS.items() if name != exporter)
        raise UnsupportedModelError(f"the {exporter} exporter writes opsets {low}-{high}, not {opset} "
                                    f"(others: {others}; choose with --exporter)")


def _check_written_opset(path: str | Path, exporter: str, opset: int) -> None:
    model = onnx.load(str(path), load_external_data=False)
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise UnsupportedModelError(f"the {exporter} exporter was asked for opset {opset} but wrote {written}")


def export_torch(module, path: str | Path, *, exporter: str = "dynamo", opset: int | None = None,
                 metadata: dict[str, str] | None = None) -> None:
    """Export a module with ``io_specs()`` (dynamic batch) to a single self-contained file."""
    import torch

    if exporter not in EXPORTERS:
        raise UnsupportedModelError(f"unknown exporter {exporter!r}; choose one of {EXPORTERS}")
    opset = opset or DEFAULT_OPSET
    check_opset(f"torch-{exporter}", opset)
    inputs, outputs = module.io_specs()
    example = tuple(torch.rand(2, *s.shape[1:]) for s in inputs)
    names = [s.name for s in inputs]
    common = {"input_names": names, "output_names": [s.name for s in outputs], "opset_version": opset}
    with quiet_exporter(), torch.inference_mode(False):
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(module, example, str(path), dynamo=True, external_data=False,
                              dynamic_shapes=tuple({0: batch} for _ in inputs), verbose=False, **common)
        else:
            axes = {n: {0: "batch"} for n in [*names, *common["output_names"]]}
            torch.onnx.export(module, example, str(path), dynamo=False, dynamic_axes=axes, **common)
    sidecar = Path(f"{path}.data")
    if sidecar.exists():  # a large model would need external data; ours must be one file
        sidecar.unlink()
        raise UnsupportedModelError(f"the {exporter} exporter wrote external data beside {path}")
    _check_written_opset(path, f"torch-{exporter}", opset)
    finish(path, {"exporter": f"torch-{exporter}", **(metadata or {})})


def export_keras(model, path: str | Path, *, opset: int | None = None,
                 metadata: dict[str, str] | None = None) -> None:
    """Export a Keras model with Keras 3's own ONNX exporter, then fix its names."""
    import numpy as np

    # Keras refuses to export a model that has never been called (e.g. one just loaded).
    (spec,) = model.inputs
    model(np.zeros((1, *spec.shape[1:]), dtype="float32"))
    opset = opset or KERAS_DEFAULT_OPSET
    check_opset("keras", opset)
    with quiet_exporter():
        model.export(str(path), format="onnx", verbose=False, opset_version=opset)
    _check_written_opset(path, "keras", opset)
    finish(path, {"exporter": "keras", **(metadata or {})})


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Capture the exporters' prints (stdout and stderr: onnxscript prints whole tracebacks
    of conversions it gave up on), their own Future/DeprecationWarnings and torch.onnx's
    log lines about optional packages (torchvision), so the CLI output shows what
    rps_infer says; what they printed goes to the ``rps_infer.export`` debug log
    (``rps-infer --debug`` shows it). Errors still propagate."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # Several inputs sharing one batch Dim: the exporter notes it keeps one name.
            warnings.filterwarnings("ignore", message=".*will not be used, since it shares", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)
        if printed.getvalue().strip():
            log.debug("the exporter printed:\n%s", printed.getvalue().rstrip())


def finish(path: str | Path, metadata: dict[str, str]) -> None:
    """Rename the single input/output to ``input``/``output``, name the batch dim, add metadata."""
    model = onnx.load(str(path))
    normalise_interface(model)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({METADATA_PREFIX + k: str(v) for k, v in metadata.items()})
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def normalise_interface(model: onnx.ModelProto) -> None:
    """Name every symbolic first dimension ``batch``; rename a one-input, one-output graph
    to ``input`` -> ``output`` (Keras names its output ``Identity:0`` and its batch dim
    ``unk__N``). Graphs with several inputs keep the names their exporter was given."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) == 1 and len(graph.output) == 1:
        _rename_value(graph, inputs[0].name, "input")
        _rename_value(graph, graph.output[0].name, "output")
    for value in [*inputs, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


def _rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.name == old:
            value.name = new
