"""The model zoo: ``models/zoo.toml`` and building its artifacts into ``models/build/``.

Everything that iterates over models (the benchmark suite, the parity tests, the
demo, serving) reads model tables through :func:`load_zoo` (a manifest file) or
:func:`load_tables` (tables already read, e.g. ``[tool.rps_infer.models]`` of a user's
``pyproject.toml``, see :mod:`rps_infer.project`). A table's common keys are checked by
:class:`ZooTable`, its family's own keys by the family's schema (:mod:`rps_infer.families`);
how artifacts are built is the family's business.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

import rps_infer.families as families
import rps_infer.progress as bar
from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.backends.spec import BackendSpec
from rps_infer.compare import PRESETS, Tolerance, tolerance_for_precision
from rps_infer.compare import tolerance as custom_tolerance
from rps_infer.errors import ConfigError, RpsInferError
from rps_infer.inputs import INPUT_GENERATORS, InputChoice, InputFile, make_feeds
from rps_infer.schemas import Strict, read_toml, validated
from rps_infer.verify import ParityReport, compare_backends

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME_CHARACTERS = "letters, digits, '-' and '_'"


def default_zoo_path() -> Path:
    """``$RPS_INFER_ZOO`` or ``models/zoo.toml`` in the source checkout."""
    return Path(os.environ.get("RPS_INFER_ZOO", REPO_ROOT / "models" / "zoo.toml"))


def _one_of(value: str, known, what: str) -> str:
    if value not in known:
        raise ValueError(f"one of {tuple(known)} ({what})")
    return value


class ModelRelation(Strict):
    """Within one model: backend ``faster`` at least ``by`` times faster than ``than``, at every batch size."""

    faster: str
    than: str
    by: Annotated[float, Field(gt=1.0)]


class ZooTable(Strict):
    """The keys every ``[models.<name>]`` table has (the family's own keys come on top).

    ``reference`` defaults to the family's first, ``tolerance`` to ``fp32`` (``atol`` / ``rtol``
    override it at full precision), ``ci`` to true, ``batch_sizes`` to ``[1]``, ``inputs`` to a
    generator chosen by each input's shape; ``inputs`` may also name an ``.npz`` (or a folder of
    ``.npy``) of the model's own inputs. ``threshold`` is the gate's allowed slowdown for every
    case of the model; ``relations`` speed-ups it must show at every batch size.
    """

    family: str
    reference: str | None = None
    tolerance: str = "fp32"
    atol: Annotated[float, Field(ge=0.0)] | None = None
    rtol: Annotated[float, Field(ge=0.0)] | None = None
    backends: Annotated[list[str], Field(min_length=1)] | None = None
    batch_sizes: Annotated[list[Annotated[int, Field(gt=0, strict=True)]], Field(min_length=1)] = Field(
        default_factory=lambda: [1])
    ci: Annotated[bool, Field(strict=True)] = True
    inputs: str | None = None
    threshold: Annotated[float, Field(ge=0.0)] | None = None
    relations: list[ModelRelation] = Field(default_factory=list)

    @field_validator("family")
    @classmethod
    def _family(cls, value: str) -> str:
        return _one_of(value, families.families(), "a model family")

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        return _one_of(value, PRESETS, "a tolerance preset")

    @field_validator("backends")
    @classmethod
    def _backends(cls, value: list[str] | None) -> list[str] | None:
        for spec in value or ():
            try:
                BackendSpec.parse(spec)
            except RpsInferError as exc:
                raise ValueError(str(exc)) from None
        return value


@dataclass(frozen=True)
class ZooEntry:
    """One ``[models.<name>]`` table; ``params`` are its family's own keys (validated). Paths in a
    manifest are relative to its folder; artifacts are built into ``<that folder>/build``."""

    name: str
    family: str
    reference: str
    tolerance: str
    backends: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    ci: bool
    inputs: str | None  # an input generator; None: chosen by each input's shape
    build_dir: Path = field(compare=False)
    params: Any = field(default=None, compare=False)
    input_file: Path | None = field(default=None, compare=False)  # the model's own inputs (.npz, .npy folder)
    atol: float | None = None
    rtol: float | None = None
    threshold: float | None = None
    relations: tuple[ModelRelation, ...] = ()

    @property
    def source(self) -> Path | None:
        """The source file the family builds from, if it has one (the MLPs' Go JSON)."""
        return getattr(self.params, "source", None)

    @property
    def onnx_path(self) -> Path:
        """The serving artifact ``models/build/<name>.onnx``."""
        return self.build_dir / f"{self.name}.onnx"

    @property
    def artifact_dir(self) -> Path:
        """``models/build/<name>/``: the other artifacts."""
        return self.build_dir / self.name

    def artifacts(self) -> dict[str, Path]:
        """Every artifact by role (``onnx`` first: the serving artifact)."""
        return families.get(self.family).artifacts(self)

    def backend(self, spec: str, **options: Any) -> Backend:
        """A backend for ``spec`` (``onnxrt-cpu``, ``pyt-cuda``, ``onnxrt-tensorrt:int8``, ``numpy``...)
        on the artifact that backend runs (:attr:`~rps_infer.backends.registry.BackendInfo.artifact`;
        a backend with none runs the entry's source); see :func:`rps_infer.runtime.open_backend`."""
        from rps_infer.runtime import open_backend

        role = registry.get(BackendSpec.parse(spec).backend).artifact
        # A backend with no artifact role of its own (numpy) runs the source: a family's, or a user's file.
        path = (self.source or getattr(self.params, "path", None)) if role is None else self.artifacts().get(role)
        if path is None:
            raise RpsInferError(f"backend {spec!r} cannot run {self.name}; "
                                f"its artifacts are {sorted(self.artifacts())}")
        if not path.is_file():
            raise RpsInferError(f"{self.name}: {path} is not built; run `rps-infer models build {self.name}`")
        family = families.get(self.family)
        model = family.open(self, path) if family.open else path
        return open_backend(model, spec, calibration_inputs=self.inputs, **options)

    def tolerance_for(self, spec: str) -> str | Tolerance:
        """The tolerance ``spec`` is judged with: a reduced precision relaxes the preset; at full
        precision the table's ``atol`` / ``rtol`` override it."""
        preset = tolerance_for_precision(self.tolerance, BackendSpec.parse(spec).precision)
        if preset != self.tolerance or (self.atol is None and self.rtol is None):
            return preset
        return custom_tolerance(preset, self.atol, self.rtol)

    def input_choice(self) -> InputChoice:
        """Where parity's inputs come from: the model's own file, else the generator."""
        return InputChoice(self.inputs, file=InputFile(self.input_file) if self.input_file else None)

    def feeds(self, specs, batch: int, seed: int) -> dict:
        """Inputs for one timed call at ``batch``: generated, or the model's own file's rows
        (repeated when the batch is larger than the file)."""
        if self.input_file is None:
            return make_feeds(specs, batch, seed=seed, generator=self.inputs)
        arrays = InputFile(self.input_file).feeds(specs)
        rows = next(iter(arrays.values())).shape[0]
        index = [i % rows for i in range(batch)]
        return {name: array[index] for name, array in arrays.items()}

    def reference_backend(self) -> Backend:
        """What parity is judged against (the manifest's ``reference``, run by the family's spec for it)."""
        family = families.get(self.family)
        if family.reference_backend is not None:
            return family.reference_backend(self)
        return self.backend(family.references[self.reference](self))

    def check_parity(self, backend: Backend, spec: str, batch_sizes: Sequence[int], *, seed: int = 0,
                     reference: Backend | None = None, inputs: InputChoice | None = None,
                     **labels: str) -> ParityReport:
        """``backend`` (running ``spec``) against the reference at ``batch_sizes``, on ``inputs``
        (default: the entry's generator): what must pass before anything is timed."""
        reference = reference or self.reference_backend()
        return compare_backends(reference, backend, batch_sizes=batch_sizes, tol=self.tolerance_for(spec),
                                weights=getattr(reference, "weights", None), seed=seed,
                                inputs=inputs or self.input_choice(), **labels)

    def is_built(self) -> bool:
        """Every artifact exists and is newer than what defines the model (the family says what)."""
        source_time = families.get(self.family).definition(self).stat().st_mtime
        return all(p.is_file() and p.stat().st_mtime >= source_time for p in self.artifacts().values())


def load_zoo(path: str | Path | None = None, build_dir: str | Path | None = None) -> dict[str, ZooEntry]:
    """Read and validate the manifest; a :class:`ConfigError` names the bad key."""
    path = Path(path) if path is not None else default_zoo_path()
    data = read_toml(path, "the zoo manifest")
    root = path.resolve().parent  # relative paths start at the manifest's folder
    build = Path(build_dir) if build_dir is not None else root / "build"
    return load_tables(data.get("models"), path, root, build)


def load_tables(tables: object, where: Path | None, root: Path, build: Path, *, prefix: str = "models",
                default_family: str | None = None) -> dict[str, ZooEntry]:
    """Validate ``[<prefix>.<name>]`` tables read from ``where``: paths in them are relative to
    ``root``, artifacts are built into ``build``; a table without ``family`` gets ``default_family``."""
    where = where or root
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(where, prefix, f"one or more [{prefix}.<name>] tables", repr(tables))
    entries = {}
    for name, table in tables.items():
        if default_family is not None and isinstance(table, dict):
            table = {"family": default_family, **table}
        entries[name] = _entry(where, f"{prefix}.{name}", name, table, root, build)
    return entries


def _entry(path: Path, where: str, name: str, table: object, root: Path, build: Path) -> ZooEntry:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(path, f"{where}.<name>", NAME_CHARACTERS, repr(name))
    if not isinstance(table, dict):
        raise ConfigError(path, where, "a table", repr(table))
    common = set(ZooTable.model_fields)
    base = validated(ZooTable, {k: v for k, v in table.items() if k in common}, path, where)
    family = families.get(base.family)
    params = validated(family.params, {k: v for k, v in table.items() if k not in common}, path, where, root=root)
    reference = base.reference or next(iter(family.references))
    if reference not in family.references:
        raise ConfigError(path, f"{where}.reference", f"one of {tuple(family.references)}", repr(reference))
    generator, input_file = _inputs(path, where, base.inputs, root)
    backends = base.backends or _default_backends(path, where, params)
    return ZooEntry(name, base.family, reference, base.tolerance, tuple(backends), tuple(base.batch_sizes), base.ci,
                    generator, build, params, input_file, base.atol, base.rtol, base.threshold,
                    tuple(base.relations))


def _inputs(path: Path, where: str, value: str | None, root: Path) -> tuple[str | None, Path | None]:
    """(generator, input file) of a table's ``inputs``: a generator name or a file of arrays."""
    if value is None or value in INPUT_GENERATORS:
        return value, None
    file = root / value
    if not file.exists():
        raise ConfigError(path, f"{where}.inputs", f"one of {INPUT_GENERATORS} or an existing .npz / folder of "
                          f".npy (looked at {file})", repr(value))
    return None, file


def _default_backends(path: Path, where: str, params: Any) -> list[str]:
    """A user's file runs on its format's own backend by default; other families must say."""
    model = getattr(params, "path", None)
    if model is None:
        raise ConfigError(path, f"{where}.backends", "a list of backend specs (e.g. [\"onnxrt-cpu\"])", "nothing")
    from rps_infer.formats import detect_format

    return [f"{registry.default_for(detect_format(model))}-cpu"]


def file_entry(path: Path, *, backends: Sequence[str], batch_sizes: Sequence[int], reference: Path | None = None,
               hints: Any = None, tolerance: str | None = None) -> ZooEntry:
    """A user's model file (and reference file) as an entry of the ``file`` family (nothing to build)."""
    from rps_infer.families.file import FileKeys
    from rps_infer.formats import ModelHints, open_model

    hints = hints or ModelHints()
    model = open_model(path, hints=hints)
    ref = open_model(reference, hints=hints) if reference is not None else model
    default = registry.default_for(model.format)
    keys = FileKeys(path=path, reference_file=reference, torch_model=hints.torch_model,
                    torch_kwargs=dict(hints.torch_kwargs), python_path=list(hints.python_path),
                    input_shapes={k: list(v) for k, v in hints.input_shapes.items()})
    return ZooEntry(path.stem, "file", "file", tolerance or ref.tolerance, tuple(backends) or (f"{default}-cpu",),
                    tuple(batch_sizes), True, ref.inputs or model.inputs, path.parent, keys)


def build(entries: list[ZooEntry], force: bool = False,
          progress: Callable[[str], None] | None = None) -> dict[str, dict[str, ParityReport]]:
    """Build the entries' artifacts (skipping up-to-date ones unless ``force``)."""
    built = {}
    for i, entry in enumerate(entries):
        bar.step(f"building {entry.name}", i, len(entries))
        if not force and entry.is_built():
            if progress:
                progress(f"{entry.name}: up to date")
            continue
        built[entry.name] = families.get(entry.family).build(entry, progress)
    return built


def select(zoo: dict[str, ZooEntry], names: list[str] | None) -> list[ZooEntry]:
    """The named entries (all when ``names`` is empty); a family name (``digits``) stands
    for all its entries; unknown names are an error."""
    if not names:
        return list(zoo.values())
    known_families = {e.family for e in zoo.values()}
    unknown = [n for n in names if n not in zoo and n not in known_families]
    if unknown:
        raise RpsInferError(f"unknown model(s) {unknown}; the zoo has {sorted(zoo)} "
                            f"(families {sorted(known_families)})")
    chosen = [e for n in names for e in ([zoo[n]] if n in zoo else [e for e in zoo.values() if e.family == n])]
    return list({e.name: e for e in chosen}.values())
