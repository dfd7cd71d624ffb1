"""Intermediate tensors of a model run ("taps"), so parity can be judged where an error lives.

A tap is ``(label, array)``; a run's taps come in execution order. How each runtime
exposes them: ONNX Runtime runs a copy of the graph with every float tensor marked as
a graph output (what Polygraphy's ``--onnx-outputs mark all`` does); PyTorch records the
input and output of every leaf module through hooks; Keras runs an intermediate
``keras.Model`` over every layer's input and output (a Dense layer with a built-in
activation also yields its pre-activation, computed from the layer's own kernel).
Labels are whatever the runtime calls a tensor: :mod:`rps_infer.layers` never trusts
them and matches taps to a reference's layers by order, shape and value.

Diagnosis only: taps are slow and never timed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Tap = tuple[str, np.ndarray]
# ONNX element types whose tensors can be compared with a float reference.
_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def onnx_marked(path: str | Path) -> tuple[bytes, list[str]]:
    """The graph at ``path`` with every float node output made a graph output, and the
    names of those outputs in node (= execution) order; the model's own outputs last."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    typed = {v.name: v for v in graph.value_info}
    own = [o.name for o in graph.output]
    marked = []
    for node in graph.node:
        for name in node.output:
            info = typed.get(name)
            if name and name not in own and info is not None and info.type.tensor_type.elem_type in _FLOAT_TYPES:
                graph.output.append(info)
                marked.append(name)
    return model.SerializeToString(), [*marked, *own]


def torch_taps(module, run: Callable[[], object]) -> list[Tap]:
    """Call ``run`` with hooks on every leaf module of ``module``: its first input, then its output."""
    taps: list[Tap] = []

    def keep(label: str, value: object) -> None:
        if hasattr(value, "detach"):  # clone: an in-place ReLU would overwrite the tensor later
            taps.append((label, value.detach().float().cpu().clone().numpy()))

    handles = []
    for name, child in module.named_modules():
        if any(True for _ in child.children()):
            continue
        handles.append(child.register_forward_pre_hook(
            lambda _m, args, name=name: keep(f"{name} (input)", args[0]) if args else None))
        handles.append(child.register_forward_hook(lambda _m, _args, out, name=name: keep(name, out)))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return taps


def torch_block_taps(blocks, run: Callable[[], object]) -> list[tuple[str, object, np.ndarray, np.ndarray]]:
    """Call ``run`` with hooks on named ``blocks`` [(title, module)]: per block call, in order,
    (title, module, its first input, its output). A block called again is titled ``... (call 2)``;
    a call whose first input or output is not a tensor is skipped."""
    seen: list[tuple[str, object, np.ndarray, np.ndarray]] = []
    calls: dict[str, int] = {}
    pending: dict[int, list] = {}
    handles = []

    def before(block, args) -> None:
        # The input is copied before the call: an in-place block (ReLU(inplace=True)) overwrites it.
        pending.setdefault(id(block), []).append(_array(args[0]) if args and hasattr(args[0], "detach") else None)

    def after(title: str, block, out) -> None:
        given = pending[id(block)].pop()
        if given is None or not hasattr(out, "detach"):
            return
        calls[title] = calls.get(title, 0) + 1
        shown = title if calls[title] == 1 else f"{title} (call {calls[title]})"
        seen.append((shown, block, given, _array(out)))

    for title, block in blocks:
        handles.append(block.register_forward_pre_hook(before))
        handles.append(block.register_forward_hook(lambda m, _args, out, title=title: after(title, m, out)))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _array(value) -> np.ndarray:
    return value.detach().float().cpu().clone().numpy()


def leaf_blocks(module) -> list[tuple[str, object]]:
    """(``"qualified.name (Class)"``, module) of every leaf module of ``module``, the blocks a
    network without ``parity_blocks()`` is compared by; none for TorchScript, whose
    compiled calls run no Python hooks."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return []
    return [(f"{name} ({type(child).__name__})", child) for name, child in module.named_modules()
            if name and not any(True for _ in child.children())]


def keras_taps(model, x: np.ndarray) -> list[Tap]:
    """Every layer's input and output of a Keras model run on ``x`` (plus Dense pre-activations)."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer.input, list | tuple | dict)]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a bare tensor, not [tensor]
    probe = keras.Model(inputs, [t for layer in layers for t in (layer.input, layer.output)])
    values = [np.asarray(v) for v in probe(x, training=False)]
    taps: list[Tap] = []
    for i, layer in enumerate(layers):
        given, made = values[2 * i], values[2 * i + 1]
        taps.append((f"{layer.name} (input)", given))
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.Dense) and activation is not None and activation.__name__ != "linear":
            kernel, *bias = (np.asarray(w) for w in layer.get_weights())
            pre = given @ kernel + (bias[0] if bias else 0)
            taps.append((f"{layer.name} (pre-activation)", pre.astype(given.dtype)))
        taps.append((layer.name, made))
    return taps
