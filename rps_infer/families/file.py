"""A user's own model files as a zoo entry: ``rps-infer bench FILE``, a user's zoo file and the
models a repository declares (``family = "file"``, the default there) are timed like the
project's models.

The files are the artifacts. ``path`` (e.g. the ONNX export) and ``reference_file`` (e.g.
the PyTorch checkpoint) each serve the backends of their format; a backend that runs
neither (ONNX Runtime for a Go JSON file, a PyTorch checkpoint or a Keras model) gets
``path`` converted to its format into the build folder, parity proven before it is written.
Parity is judged against ``reference_file`` on its own backend when given, else against
``path`` on its own backend (which still proves that other backends, devices and
precisions compute what it computes). Paths are relative to the folder of the file that
declares them; ``python_path`` (where a ``torch_model`` class is imported from) starts
with that folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from rps_infer.families.base import Family
from rps_infer.schemas import Strict

ROLES = {"onnx": "onnx", "torch": "pt", "keras": "keras", "savedmodel": "keras", "skops": "native",
         "xgboost": "native"}
CONVERTED = {"onnx": ("onnx", "model.onnx")}  # artifact role -> (convert target, file name in the build folder)


class FileKeys(Strict):
    """The model file, an optional reference file, and what the files cannot say about themselves."""

    path: Path
    reference_file: Path | None = None
    torch_model: str | None = None
    torch_kwargs: dict = Field(default_factory=dict)
    python_path: list[Path] = Field(default_factory=list, validate_default=True)
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)

    @field_validator("path", "reference_file")
    @classmethod
    def _exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = Path((info.context or {}).get("root", ".")) / value
        if not path.exists():
            raise ValueError(f"an existing model file (looked at {path})")
        return path

    @field_validator("python_path")
    @classmethod
    def _folders(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        root = Path((info.context or {}).get("root", "."))
        return [root / p for p in value] + [root]

    def hints(self):
        """The :class:`~rps_infer.formats.ModelHints` these keys give."""
        from rps_infer.formats import ModelHints

        return ModelHints(self.torch_model, self.torch_kwargs, tuple(self.python_path),
                          {k: tuple(v) for k, v in self.input_shapes.items()})


def _open(entry, path: Path):
    from rps_infer.formats import open_model

    return open_model(path, hints=entry.params.hints())


def declared(entry) -> dict[str, Path]:
    """Each declared file under the role its format's backend runs (``onnx``, ``pt``, ``keras``, ``native``)."""
    files = [p for p in (entry.params.reference_file, entry.params.path) if p is not None]
    return {ROLES.get(_detect(p), "file"): p for p in files}


def _detect(path: Path) -> str:
    from rps_infer.formats import detect_format

    return detect_format(path)


def _to_convert(entry) -> dict[str, Path]:
    """Artifact role -> the file it is converted to, for each backend of the entry that runs
    none of the declared files."""
    from rps_infer.backends import registry
    from rps_infer.backends.spec import BackendSpec

    have = declared(entry)
    wanted = {}
    for spec in entry.backends:
        role = registry.get(BackendSpec.parse(spec).backend).artifact
        if role in CONVERTED and role not in have:
            wanted[role] = entry.artifact_dir / CONVERTED[role][1]
    return wanted


def artifacts(entry) -> dict[str, Path]:
    """The declared files by role, and the conversions the entry's backends need."""
    return {**declared(entry), **_to_convert(entry)}


def build(entry, progress=None) -> dict:
    """Convert ``path`` to each format a backend needs and no declared file has (proven first)."""
    from rps_infer.convert import convert

    reports = {}
    for role, out in _to_convert(entry).items():
        if progress:
            progress(f"{entry.name}: {entry.params.path.name} -> {out}")
        reports[role] = convert(entry.params.path, CONVERTED[role][0], out, hints=entry.params.hints(),
                                tol=entry.tolerance, inputs=entry.input_choice()).report
    return reports


def reference_backend(entry):
    """The reference file (else the file itself) on its own backend."""
    from rps_infer.runtime import open_backend

    return open_backend(_open(entry, entry.params.reference_file or entry.params.path))


FAMILY = Family(name="file", params=FileKeys, references={"file": lambda entry: ""}, artifacts=artifacts,
                build=build, definition=lambda entry: entry.params.path,
                reference_backend=reference_backend, open=_open)
