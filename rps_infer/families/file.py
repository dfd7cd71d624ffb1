"""A user's own model files as a zoo entry: ``rps-infer bench FILE`` and a user's zoo file
(``family = "file"``) time them like the project's models.

Nothing is built: the files are the artifacts. ``path`` (e.g. the ONNX export) and
``reference_file`` (e.g. the PyTorch checkpoint) each serve the backends of their format;
parity is judged against ``reference_file`` on its own backend when given, else against
``path`` on its own backend (which still proves that other backends, devices and
precisions compute what it computes). Paths are relative to the zoo file's folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from rps_infer.families import Family
from rps_infer.schemas import Strict

ROLES = {"onnx": "onnx", "torch": "pt", "keras": "keras", "savedmodel": "keras", "skops": "native",
         "xgboost": "native"}


class FileKeys(Strict):
    """The model file, an optional reference file, and what the files cannot say about themselves."""

    path: Path
    reference_file: Path | None = None
    torch_model: str | None = None
    torch_kwargs: dict = Field(default_factory=dict)
    python_path: list[Path] = Field(default_factory=list)
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

    def hints(self):
        """The :class:`~rps_infer.formats.ModelHints` these keys give."""
        from rps_infer.formats import ModelHints

        return ModelHints(self.torch_model, self.torch_kwargs, tuple(self.python_path),
                          {k: tuple(v) for k, v in self.input_shapes.items()})


def _open(entry, path: Path):
    from rps_infer.formats import open_model

    return open_model(path, hints=entry.params.hints())


def artifacts(entry) -> dict[str, Path]:
    """Each file under the role its format's backend runs (``onnx``, ``pt``, ``keras``, ``native``)."""
    files = [p for p in (entry.params.reference_file, entry.params.path) if p is not None]
    return {ROLES.get(_open(entry, p).format, "file"): p for p in files}


def reference_backend(entry):
    """The reference file (else the file itself) on its own backend."""
    from rps_infer.runtime import open_backend

    return open_backend(_open(entry, entry.params.reference_file or entry.params.path))


FAMILY = Family(name="file", params=FileKeys, references={"file": lambda entry: ""}, artifacts=artifacts,
                build=lambda entry, progress: {}, definition=lambda entry: entry.params.path,
                reference_backend=reference_backend, open=_open)
