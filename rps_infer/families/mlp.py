"""The RPS policy/value MLPs: a Go JSON source converted to PyTorch, Keras and two ONNX files."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo, field_validator

from rps_infer.families.base import Family, Progress
from rps_infer.schemas import Strict


class MLPKeys(Strict):
    """``source``: the Go JSON file, relative to the repository root."""

    source: Path

    @field_validator("source")
    @classmethod
    def _exists(cls, value: Path, info: ValidationInfo) -> Path:
        path = Path((info.context or {}).get("root", ".")) / value
        if not path.is_file():
            raise ValueError(f"an existing file (looked at {path})")
        return path


def artifacts(entry) -> dict[str, Path]:
    """``onnx`` (the serving artifact, exported from PyTorch), ``pt``, ``keras`` and
    ``keras_onnx`` (exported by Keras's own exporter)."""
    return {"onnx": entry.onnx_path, "pt": entry.artifact_dir / "model.pt",
            "keras": entry.artifact_dir / "model.keras", "keras_onnx": entry.artifact_dir / "keras.onnx"}


def build_artifacts(source: Path, paths: dict[str, Path], progress: Progress = None) -> dict:
    """Convert a Go JSON MLP into .pt, .keras, ONNX (from PyTorch) and ONNX (from Keras), each
    conversion proving its own parity (see :mod:`rps_infer.convert`)."""
    from rps_infer.convert import convert
    from rps_infer.formats import open_model

    src = open_model(source)
    steps = [("pt", src, "torch"), ("keras", src, "keras"), ("onnx", src, "onnx"),
             ("keras_onnx", paths["keras"], "onnx")]
    reports = {}
    for role, origin, target in steps:
        if progress:
            progress(f"{source.name} -> {paths[role]}")
        reports[role] = convert(origin, target, paths[role]).report
    return reports


FAMILY = Family(
    name="rps-mlp", params=MLPKeys,
    references={"numpy-fp64": lambda entry: "numpy", "torch-fp32": lambda entry: "pyt-cpu"},
    artifacts=artifacts,
    build=lambda entry, progress: build_artifacts(entry.params.source, artifacts(entry), progress),
    definition=lambda entry: entry.params.source,
    demo="rps_infer.demo:mlp_section",
)
