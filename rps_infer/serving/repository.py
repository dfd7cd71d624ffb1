"""A model repository: every ``.onnx`` file of a directory, served under its stem.

``<name>.onnx`` may have a sidecar ``<name>.toml`` with the keys of a ``models/zoo.toml``
table. The ones serving uses: ``backend`` or ``backends`` (a spec such as ``onnxrt-cuda``;
the first of a list), ``device``, ``precision``, ``batching`` (true/false) and
``tolerance`` (a preset, reported in the model's parameters). The zoo's other keys are
accepted and ignored, so a zoo table can be copied as it is; any other key is an error.

Names are validated: letters, digits, ``_``, ``-`` and ``.`` (not first), at most 128
characters; a file (or symlink) that resolves outside the directory is refused. A model
whose name, sidecar or file is bad is listed with the reason and served as not ready;
the others serve.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rps_infer.errors import RpsInferError

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
SERVING_KEYS = ("backend", "backends", "device", "precision", "batching", "tolerance")
IGNORED_ZOO_KEYS = ("family", "source", "reference", "batch_sizes", "ci", "inputs", "width", "size", "audio",
                    "seed", "estimator")


@dataclass
class RepositoryModel:
    """One ``.onnx`` file of the repository and its serving settings, or why it cannot serve."""

    name: str
    path: Path
    backend: str = "onnxrt"
    device: str | None = None  # None: the server's --device
    precision: str | None = None  # None: the server's --precision
    batching: bool | None = None  # None: the server's setting
    tolerance: str | None = None
    error: str | None = None


def check_name(name: str) -> None:
    """Refuse a model name that could be a path or is not plain."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
        raise RpsInferError(f"invalid model name {name!r}: use letters, digits, '_', '-' and '.' "
                            "(not first), at most 128 characters")


def scan(directory: str | Path) -> list[RepositoryModel]:
    """Every ``*.onnx`` in ``directory`` (not recursive), sorted by name, with its sidecar."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RpsInferError(f"--model-repository {directory}: not a directory")
    root = directory.resolve()
    models = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".onnx" or path.name.startswith("."):  # dot files: temp files of atomic writes
            continue
        model = RepositoryModel(path.stem, path)
        try:
            check_name(model.name)
            if not path.resolve().is_relative_to(root):
                raise RpsInferError(f"{path} resolves to {path.resolve()}, outside the repository {root}")
            if not path.is_file():
                raise RpsInferError(f"{path} is not a file")
            sidecar = path.with_suffix(".toml")
            if sidecar.is_file():
                _apply_sidecar(model, sidecar)
        except RpsInferError as exc:
            model.error = str(exc)
        models.append(model)
    return models


def _apply_sidecar(model: RepositoryModel, sidecar: Path) -> None:
    from rps_infer.backends.spec import BackendSpec
    from rps_infer.compare import PRESETS

    try:
        table = tomllib.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RpsInferError(f"{sidecar}: not valid TOML: {exc}") from None
    unknown = sorted(set(table) - set(SERVING_KEYS) - set(IGNORED_ZOO_KEYS))
    if unknown:
        raise RpsInferError(f"{sidecar}: unknown key(s) {unknown}; serving reads {list(SERVING_KEYS)}")

    def need(cond: bool, key: str, expected: str) -> None:
        if not cond:
            raise RpsInferError(f"{sidecar}: {key} must be {expected}, got {table.get(key)!r}")

    spec_text = table.get("backend")
    if "backends" in table:
        need(isinstance(table["backends"], list) and table["backends"] and isinstance(table["backends"][0], str),
             "backends", "a non-empty list of backend specs")
        spec_text = spec_text or table["backends"][0]
    if spec_text is not None:
        need(isinstance(spec_text, str), "backend", "a backend spec such as 'onnxrt-cpu'")
        spec = BackendSpec.parse(spec_text)
        need(spec.backend == "onnxrt", "backend", "an onnxrt spec (a repository serves .onnx files)")
        model.device = spec.device if "-" in spec_text else None
        model.precision = spec.precision if spec.precision != "fp32" else None
    if "device" in table:
        need(isinstance(table["device"], str), "device", "a device name such as 'cpu' or 'cuda'")
        model.device = table["device"]
    if "precision" in table:
        need(table["precision"] in ("fp32", "fp16", "int8"), "precision", "fp32, fp16 or int8")
        model.precision = table["precision"]
    if "batching" in table:
        need(isinstance(table["batching"], bool), "batching", "true or false")
        model.batching = table["batching"]
    if "tolerance" in table:
        need(table["tolerance"] in PRESETS, "tolerance", f"one of {tuple(PRESETS)}")
        model.tolerance = table["tolerance"]
