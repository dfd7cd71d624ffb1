"""Writing ONNX files from PyTorch (dynamo or legacy TorchScript exporter) and from Keras 3.

An exported file keeps the source's input and output names, calls an unnamed dynamic
batch dim ``batch``, and carries rps_infer metadata (kind, exporter, source).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx

from rps_infer.errors import UnsupportedModelError
from rps_infer.formats.onnxfile import METADATA_PREFIX
from rps_infer.tensors import TensorSpec

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


def export_torch(module, path: str | Path, inputs: Sequence[TensorSpec], outputs: Sequence[str], *,
                 exporter: str = "dynamo", opset: int | None = None, metadata: dict[str, str] | None = None) -> None:
    """Export a network (``inputs`` in order, ``outputs`` its output names) to one self-contained
    file; a dynamic first dim of an input stays dynamic (``batch``)."""
    import torch

    from rps_infer.inputs import make_feeds

    if exporter not in EXPORTERS:
        raise UnsupportedModelError(f"unknown exporter {exporter!r}; choose one of {EXPORTERS}")
    if exporter == "dynamo" and isinstance(module, torch.jit.ScriptModule):
        raise UnsupportedModelError("the dynamo exporter cannot export TorchScript; use --exporter legacy")
    opset = opset or DEFAULT_OPSET
    check_opset(f"torch-{exporter}", opset)
    dynamic = [s.shape[0] is None for s in inputs]
    feeds = make_feeds(inputs, 2 if any(dynamic) else inputs[0].shape[0], seed=0)
    example = tuple(torch.from_numpy(feeds[s.name]) for s in inputs)
    names = [s.name for s in inputs]
    common = {"input_names": names, "output_names": list(outputs), "opset_version": opset}
    with quiet_exporter(), torch.inference_mode(False):
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1)
            shapes = tuple({0: batch} if d else None for d in dynamic) if any(dynamic) else None
            torch.onnx.export(module, example, str(path), dynamo=True, external_data=False,
                              dynamic_shapes=shapes, verbose=False, **common)
        else:
            axes = {n: {0: "batch"} for n, d in zip(names, dynamic, strict=True) if d}
            axes |= {n: {0: "batch"} for n in outputs} if any(dynamic) else {}
            torch.onnx.export(module, example, str(path), dynamo=False, dynamic_axes=axes, **common)
    sidecar = Path(f"{path}.data")
    if sidecar.exists():  # a large model would need external data; ours must be one file
        sidecar.unlink()
        raise UnsupportedModelError(f"the {exporter} exporter wrote external data beside {path}")
    _check_written_opset(path, f"torch-{exporter}", opset)
    finish(path, {"exporter": f"torch-{exporter}", **(metadata or {})})


def export_keras(model, path: str | Path, *, opset: int | None = None,
                 metadata: dict[str, str] | None = None) -> None:
    """Export a Keras model with Keras 3's own ONNX exporter; inputs and outputs get the
    model's own names back (its exporter calls an output ``Identity:0``)."""
    import numpy as np

    # Keras refuses to export a model that has never been called (e.g. one just loaded).
    model([np.zeros((1, *t.shape[1:]), dtype="float32") for t in model.inputs] if len(model.inputs) > 1
          else np.zeros((1, *model.inputs[0].shape[1:]), dtype="float32"))
    opset = opset or KERAS_DEFAULT_OPSET
    check_opset("keras", opset)
    with quiet_exporter():
        model.export(str(path), format="onnx", verbose=False, opset_version=opset)
    _check_written_opset(path, "keras", opset)
    from rps_infer.backends.tf import keras_names

    finish(path, {"exporter": "keras", **(metadata or {})}, names=keras_names(model))


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Capture the exporters' prints (stdout and stderr: onnxscript prints whole tracebacks
    of conversions it gave up on), their warnings and torch.onnx's log lines about optional
    packages (torchvision), so the CLI output shows what rps_infer says; what they printed
    and warned goes to the ``rps_infer.export`` debug log (``rps-infer --debug`` shows it).
    Errors still propagate."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    printed = io.StringIO()
    caught: list[warnings.WarningMessage] = []
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.setLevel(level)
        said = printed.getvalue().rstrip() + "".join(f"\n{w.category.__name__}: {w.message}" for w in caught)
        if said.strip():
            log.debug("the exporter printed:\n%s", said.strip())


def finish(path: str | Path, metadata: dict[str, str], names: tuple[list[str], list[str]] | None = None) -> None:
    """Give the graph's inputs and outputs ``names`` (in order; None keeps them), name an
    unnamed symbolic first dim ``batch``, add the metadata, check the model."""
    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if names is not None:
        for value, new in zip([*inputs, *graph.output], [*names[0], *names[1]], strict=True):
            _rename_value(graph, value.name, new)
    for value in [*inputs, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        unnamed = dims and not dims[0].HasField("dim_value") and not dims[0].dim_param.strip("unk_0123456789")
        if unnamed:
            dims[0].dim_param = "batch"  # the exporter gave it no name of its own (Keras: unk__6)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({METADATA_PREFIX + k: str(v) for k, v in metadata.items()})
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.name == old:
            value.name = new
