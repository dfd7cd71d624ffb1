"""A model repository: every ``.onnx`` file of a directory, served under its stem, and every
folder of versions ``<name>/<n>/model.onnx`` (``n`` a positive integer, as Triton lays them
out), served under the folder's name; a flat ``<name>.onnx`` is version 1. Requests that name
no version get the highest.

A model may have a sidecar ``<name>.toml`` beside its file or folder (for all its versions)
with the keys of a ``models/zoo.toml`` table. The ones serving uses: ``backend`` or
``backends`` (a spec such as ``onnxrt-cuda``; the first of a list), ``device``,
``precision``, ``tolerance`` (a preset, reported in the model's parameters) and adaptive
batching: ``max_batch_size`` (0: off), ``preferred_batch_sizes``, ``max_queue_delay_us`` (as
Triton's dynamic batcher), or ``batching = true/false`` (the server's sizes). The zoo's other
keys are accepted and ignored, so a zoo table can be copied as it is; any other key is an error.

Names are validated: letters, digits, ``_``, ``-`` and ``.`` (not first), at most 128
characters; a file (or symlink) that resolves outside the directory is refused. A model
whose name, sidecar or file is bad is listed with the reason and served as not ready;
the others serve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from rps_infer.backends.spec import BackendSpec
from rps_infer.compare import PRESETS
from rps_infer.errors import RpsInferError
from rps_infer.schemas import Strict, read_toml, validated

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


@dataclass
class RepositoryModel:
    """One ``.onnx`` file of the repository and its serving settings, or why it cannot serve."""

    name: str
    path: Path
    backend: str = "onnxrt"
    device: str | None = None  # None: the server's --device
    precision: str | None = None  # None: the server's --precision
    batching: bool | None = None  # None: the server's setting
    max_batch_size: int | None = None  # 0: batching off; None: the server's setting
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int | None = None
    tolerance: str | None = None
    error: str | None = None
    version: str = "1"


def check_name(name: str) -> None:
    """Refuse a model name that could be a path or is not plain."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
        raise RpsInferError(f"invalid model name {name!r}: use letters, digits, '_', '-' and '.' "
                            "(not first), at most 128 characters")


def scan(directory: str | Path) -> list[RepositoryModel]:
    """Every ``*.onnx`` in ``directory`` and every version of every ``<name>/<n>/model.onnx``,
    sorted by name and version, each with its sidecar (or why it cannot serve)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RpsInferError(f"--model-repository {directory}: not a directory")
    root = directory.resolve()
    models = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):  # dot files: temp files of atomic writes
            continue
        if path.suffix == ".onnx":
            found = [RepositoryModel(path.stem, path)]
            # A folder of versions beside it is ambiguous; a build folder (the zoo keeps a
            # classifier's native model in <name>/) holds no versions and is not a model.
            if path.with_suffix("").is_dir() and _versions(path.with_suffix("")):
                found[0].error = f"both {path.name} and the folder {path.stem}/ exist: keep one"
        elif path.is_dir():
            found = _versions(path)
        else:
            continue
        for model in found:
            _check(model, root, directory / f"{model.name}.toml")
        models.extend(found)
    return models


def _versions(folder: Path) -> list[RepositoryModel]:
    """The versions of ``folder``: its integer-named subfolders holding a ``model.onnx``."""
    numbered = sorted((int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()
                      and int(p.name) > 0)
    models = []
    for number, sub in numbered:
        model = RepositoryModel(folder.name, sub / "model.onnx", version=str(number))
        if not model.path.exists():
            model.error = f"{sub} has no model.onnx"
        models.append(model)
    return models


def _check(model: RepositoryModel, root: Path, sidecar: Path) -> None:
    """Set ``model.error`` when its name or file is bad; apply its sidecar."""
    if model.error is not None:
        return
    try:
        check_name(model.name)
        if not model.path.resolve().is_relative_to(root):
            raise RpsInferError(f"{model.path} resolves to {model.path.resolve()}, outside the repository {root}")
        if not model.path.is_file():
            raise RpsInferError(f"{model.path} is not a file")
        if sidecar.is_file():
            _apply_sidecar(model, sidecar)
    except RpsInferError as exc:
        model.error = str(exc)


class Sidecar(Strict):
    """A model's ``<name>.toml``: the keys serving reads; the zoo's other keys are ignored."""

    backend: str | None = None
    backends: Annotated[list[str], Field(min_length=1)] | None = None
    device: str | None = None
    precision: Literal["fp32", "fp16", "int8"] | None = None
    batching: StrictBool | None = None
    max_batch_size: Annotated[int, Field(ge=0, strict=True)] | None = None
    preferred_batch_sizes: list[Annotated[int, Field(gt=0, strict=True)]] = Field(default_factory=list)
    max_queue_delay_us: Annotated[int, Field(ge=0, strict=True)] | None = None
    tolerance: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_zoo_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        import rps_infer.families as families
        from rps_infer.zoo import ZooTable

        ignored = set(ZooTable.model_fields) | {"source"}
        for family in families.families().values():
            ignored |= set(family.params.model_fields)
        return {k: v for k, v in data.items() if k not in ignored or k in cls.model_fields}

    @field_validator("backend", "backends")
    @classmethod
    def _onnxrt_specs(cls, value: str | list[str] | None) -> str | list[str] | None:
        for text in [value] if isinstance(value, str) else value or []:
            try:
                spec = BackendSpec.parse(text)
            except RpsInferError as exc:
                raise ValueError(str(exc)) from None
            if spec.backend != "onnxrt":
                raise ValueError(f"an onnxrt spec (a repository serves .onnx files), not {text!r}")
        return value

    @field_validator("tolerance")
    @classmethod
    def _preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"one of {tuple(PRESETS)}")
        return value


def _apply_sidecar(model: RepositoryModel, sidecar: Path) -> None:
    table = validated(Sidecar, read_toml(sidecar, "a model's serving settings"), sidecar)
    spec_text = table.backend or (table.backends[0] if table.backends else None)
    if spec_text is not None:
        spec = BackendSpec.parse(spec_text)
        model.device = spec.device if "-" in spec_text else None
        model.precision = spec.precision if spec.precision != "fp32" else None
    model.device = table.device or model.device
    model.precision = table.precision or model.precision
    model.batching = table.batching
    model.max_batch_size = table.max_batch_size
    model.preferred_batch_sizes = tuple(table.preferred_batch_sizes)
    model.max_queue_delay_us = table.max_queue_delay_us
    model.tolerance = table.tolerance
