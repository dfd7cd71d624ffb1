"""The model zoo: ``models/zoo.toml`` and building its artifacts into ``models/build/``.

Everything that iterates over models (the benchmark suite, the parity tests, the
demo, serving) reads the manifest through :func:`load_zoo`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rps_infer.backends.base import Backend
from rps_infer.backends.spec import BackendSpec
from rps_infer.compare import PRESETS
from rps_infer.errors import ModelFormatError, RpsInferError
from rps_infer.inputs import INPUT_GENERATORS
from rps_infer.verify import ParityReport

REPO_ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("rps-mlp", "unet", "digits")
REFERENCES = ("numpy-fp64", "torch-fp32", "native")
REQUIRED_KEYS = ("family", "reference", "tolerance", "backends", "batch_sizes", "ci", "inputs")
UNET_KEYS = ("width", "size", "audio", "seed")  # a seeded lipsync U-Net instead of a source file
UNET_VALIDATION_BATCHES = (1, 3, 8)  # 64 U-Net frames take seconds in eager PyTorch
DIGITS_KEYS = ("estimator", "seed")  # a classifier trained on the bundled digits data set
NATIVE_BACKENDS = {"logreg": "sklearn", "rf": "sklearn", "xgb": "xgboost"}


def default_zoo_path() -> Path:
    """``$RPS_INFER_ZOO`` or ``models/zoo.toml`` in the source checkout."""
    return Path(os.environ.get("RPS_INFER_ZOO", REPO_ROOT / "models" / "zoo.toml"))


@dataclass(frozen=True)
class ZooEntry:
    """One ``[models.<name>]`` table; paths are resolved against the manifest's repo root."""

    name: str
    family: str
    source: Path | None
    reference: str
    tolerance: str
    backends: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    ci: bool
    inputs: str
    build_dir: Path = field(compare=False)
    params: dict = field(default_factory=dict, compare=False)  # family-specific keys (U-Net size)

    @property
    def onnx_path(self) -> Path:
        """The serving artifact ``models/build/<name>.onnx`` (exported from PyTorch)."""
        return self.build_dir / f"{self.name}.onnx"

    @property
    def artifact_dir(self) -> Path:
        """``models/build/<name>/``: the other artifacts."""
        return self.build_dir / self.name

    def artifacts(self) -> dict[str, Path]:
        """Every artifact by role: onnx (serving), pt, keras, keras_onnx (U-Net: onnx, pt)."""
        if self.family == "unet":
            return {"onnx": self.onnx_path, "pt": self.artifact_dir / "model.pt"}
        if self.family == "digits":
            suffix = ".json" if self.native_backend == "xgboost" else ".skops"
            return {"onnx": self.onnx_path, "native": self.artifact_dir / f"model{suffix}"}
        return {
            "onnx": self.onnx_path,
            "pt": self.artifact_dir / "model.pt",
            "keras": self.artifact_dir / "model.keras",
            "keras_onnx": self.artifact_dir / "keras.onnx",
        }

    def backend(self, spec: str, **options) -> Backend:
        """A backend for ``spec`` (``onnxrt-cpu``, ``pyt-cuda``, ``onnxrt-tensorrt:int8``, ``numpy``...)
        on this model's artifact; the spec's variants become backend options.

        onnxrt runs ``<name>.onnx``, pyt ``model.pt``, tf ``model.keras``, numpy the source.
        """
        from rps_infer.formats import open_model

        parsed = BackendSpec.parse(spec)
        artifact = {"onnxrt": "onnx", "pyt": "pt", "tf": "keras", "sklearn": "native",
                    "xgboost": "native"}.get(parsed.backend)
        if parsed.backend == "numpy" and self.source is not None:
            return open_model(self.source).backend("numpy")
        if artifact is None or artifact not in self.artifacts():
            raise RpsInferError(f"backend {spec!r} cannot run {self.name}; "
                                f"its artifacts are {sorted(self.artifacts())}")
        path = self.artifacts()[artifact]
        if not path.is_file():
            raise RpsInferError(f"{self.name}: {path} is not built; run `rps-infer models build {self.name}`")
        if parsed.backend == "onnxrt":
            options.setdefault("calibration_inputs", self.inputs)
        return open_model(path).backend(parsed.backend, parsed.device, **parsed.options(), **options)

    def tolerance_for(self, spec: str) -> str:
        """The tolerance preset ``spec`` is judged with (a reduced precision relaxes it)."""
        from rps_infer.compare import tolerance_for_precision

        return tolerance_for_precision(self.tolerance, BackendSpec.parse(spec).precision)

    def reference_backend(self) -> Backend:
        """What parity is judged against: the float64 numpy forward, the PyTorch fp32 model or
        the native classifier."""
        if self.reference == "native":
            return self.backend(f"{self.native_backend}-cpu")
        return self.backend("numpy" if self.reference == "numpy-fp64" else "pyt-cpu")

    @property
    def native_backend(self) -> str | None:
        """``sklearn`` or ``xgboost`` for a digits classifier, else None."""
        return NATIVE_BACKENDS.get(self.params.get("estimator"))

    def is_built(self) -> bool:
        """Every artifact exists and is newer than what defines the model (the Go JSON source;
        for a seeded U-Net the module that seeds it)."""
        module = {"unet": "unet.py", "digits": "digits.py"}.get(self.family)
        definition = self.source if module is None else Path(__file__).parent / "nets" / module
        source_time = definition.stat().st_mtime
        return all(p.is_file() and p.stat().st_mtime >= source_time for p in self.artifacts().values())


def load_zoo(path: str | Path | None = None, build_dir: str | Path | None = None) -> dict[str, ZooEntry]:
    """Read and validate the manifest; raises :class:`ModelFormatError` naming the bad key."""
    path = Path(path) if path is not None else default_zoo_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(path, "<file>", "the zoo manifest", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelFormatError(path, "<file>", "valid TOML", str(exc)) from None
    root = path.resolve().parent.parent
    build = Path(build_dir) if build_dir is not None else root / "models" / "build"
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ModelFormatError(path, "models", "one or more [models.<name>] tables", repr(tables))
    return {name: _entry(path, name, table, root, build) for name, table in tables.items()}


def _entry(path: Path, name: str, table: dict, root: Path, build: Path) -> ZooEntry:
    def need(cond: bool, key: str, expected: str) -> None:
        if not cond:
            raise ModelFormatError(path, f"models.{name}.{key}", expected, repr(table.get(key)))

    for key in REQUIRED_KEYS:
        need(key in table, key, "a value (required key)")
    need(name.replace("-", "").replace("_", "").isalnum(), "<name>", "letters, digits, '-' and '_'")
    need(table["family"] in FAMILIES, "family", f"one of {FAMILIES}")
    need(table["reference"] in REFERENCES, "reference", f"one of {REFERENCES}")
    need(table["tolerance"] in PRESETS, "tolerance", f"one of {tuple(PRESETS)}")
    need(table["inputs"] in INPUT_GENERATORS, "inputs", f"one of {INPUT_GENERATORS}")
    need(isinstance(table["ci"], bool), "ci", "true or false")
    need(isinstance(table["backends"], list) and all(isinstance(b, str) and "-" in b for b in table["backends"]),
         "backends", "a list like ['onnxrt-cpu', 'pyt-cpu']")
    for spec in table["backends"]:
        try:
            BackendSpec.parse(spec)
        except RpsInferError as exc:
            need(False, "backends", str(exc))
    need(isinstance(table["batch_sizes"], list) and table["batch_sizes"]
         and all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in table["batch_sizes"]),
         "batch_sizes", "a non-empty list of positive integers")
    source, params = None, {}
    if table["family"] == "unet":
        for key in UNET_KEYS:
            need(isinstance(table.get(key), (int, float)) and not isinstance(table.get(key), bool), key,
                 "a number (U-Net width, size, audio, seed)")
        params = {k: table[k] for k in UNET_KEYS}
    elif table["family"] == "digits":
        need(table.get("estimator") in NATIVE_BACKENDS, "estimator", f"one of {tuple(NATIVE_BACKENDS)}")
        need(isinstance(table.get("seed"), int) and not isinstance(table.get("seed"), bool), "seed", "an integer")
        params = {k: table[k] for k in DIGITS_KEYS}
    else:
        need("source" in table, "source", "a value (required key)")
        source = root / table["source"]
        need(source.is_file(), "source", f"an existing file (looked at {source})")
    return ZooEntry(name, table["family"], source, table["reference"], table["tolerance"],
                    tuple(table["backends"]), tuple(table["batch_sizes"]), table["ci"],
                    table["inputs"], build, params)


def build_mlp_artifacts(source: Path, artifacts: dict[str, Path],
                        progress: Callable[[str], None] | None = None) -> dict[str, ParityReport]:
    """Convert a Go JSON MLP into .pt, .keras, ONNX (from PyTorch) and ONNX (from Keras).

    Each conversion proves its own parity (see :mod:`rps_infer.convert`).
    """
    from rps_infer.convert import convert
    from rps_infer.formats import open_model

    src = open_model(source)
    steps = [("pt", src, "torch"), ("keras", src, "keras"), ("onnx", src, "onnx"),
             ("keras_onnx", artifacts["keras"], "onnx")]
    reports = {}
    for role, origin, target in steps:
        if progress:
            progress(f"{source.name} -> {artifacts[role]}")
        reports[role] = convert(origin, target, artifacts[role]).report
    return reports


def build_unet_artifacts(entry: ZooEntry, progress: Callable[[str], None] | None = None) -> dict[str, ParityReport]:
    """A seeded lipsync U-Net as ``model.pt``, exported to ONNX with parity proven."""
    from rps_infer.convert import convert
    from rps_infer.formats import torchfile
    from rps_infer.nets import unet
    from rps_infer.util import atomic_write

    p = entry.params
    config = unet.UNetConfig(width=float(p["width"]), size=int(p["size"]), audio=int(p["audio"]))
    artifacts = entry.artifacts()
    if progress:
        progress(f"{entry.name}: seeded U-Net (width {config.width}, {config.size} px) -> {artifacts['pt']}")
    model = unet.seeded(config, int(p["seed"]))
    atomic_write(artifacts["pt"], lambda tmp: torchfile.write_unet(model, tmp))
    if progress:
        progress(f"{entry.name}: {artifacts['pt'].name} -> {artifacts['onnx']}")
    report = convert(artifacts["pt"], "onnx", artifacts["onnx"], batch_sizes=UNET_VALIDATION_BATCHES,
                     tol=entry.tolerance).report
    return {"onnx": report}


def build_digits_artifacts(entry: ZooEntry,
                           progress: Callable[[str], None] | None = None) -> dict[str, ParityReport]:
    """Train a digits classifier, save it natively (skops / XGBoost JSON) and convert it to
    ONNX; the ONNX file is written only when it matches the native model on the whole test
    split (labels identical, probabilities within the entry's tolerance)."""
    from rps_infer.convert import classic
    from rps_infer.errors import ParityError
    from rps_infer.formats import native, open_model
    from rps_infer.nets import digits
    from rps_infer.util import atomic_write
    from rps_infer.verify import compare_backends

    artifacts = entry.artifacts()
    estimator, seed = str(entry.params["estimator"]), int(entry.params["seed"])
    if progress:
        progress(f"{entry.name}: train {estimator} on the digits (seed {seed}) -> {artifacts['native']}")
    model = digits.train(estimator, seed)
    atomic_write(artifacts["native"], lambda tmp: native.write_native(model, tmp))
    proto = classic.to_onnx(model, digits.FEATURES, {
        "rps_infer.family": "classifier", "rps_infer.estimator": estimator,
        "rps_infer.tolerance": entry.tolerance, "rps_infer.inputs": entry.inputs})
    report: ParityReport | None = None

    def write_and_prove(tmp: Path) -> None:
        nonlocal report
        tmp.write_bytes(proto.SerializeToString())
        test_rows = len(digits.split()[1])
        with open_model(artifacts["native"]).backend() as native, open_model(tmp).backend() as onnx_model:
            report = compare_backends(native, onnx_model, batch_sizes=(1, test_rows), tol=entry.tolerance,
                                      generator="digits", reference_label=f"{estimator} (native)",
                                      candidate_label=f"ONNX {entry.onnx_path.name}")
        if not report:
            raise ParityError(f"refusing to write {entry.onnx_path}: the ONNX graph does not match the "
                              f"native {estimator}", report)

    if progress:
        progress(f"{entry.name}: {artifacts['native'].name} -> {artifacts['onnx']}")
    atomic_write(artifacts["onnx"], write_and_prove)
    return {"onnx": report}


def build(entries: list[ZooEntry], force: bool = False,
          progress: Callable[[str], None] | None = None) -> dict[str, dict[str, ParityReport]]:
    """Build the entries' artifacts (skipping up-to-date ones unless ``force``)."""
    built = {}
    for entry in entries:
        if not force and entry.is_built():
            if progress:
                progress(f"{entry.name}: up to date")
            continue
        if entry.family == "unet":
            built[entry.name] = build_unet_artifacts(entry, progress)
        elif entry.family == "digits":
            built[entry.name] = build_digits_artifacts(entry, progress)
        else:
            built[entry.name] = build_mlp_artifacts(entry.source, entry.artifacts(), progress)
    return built


def select(zoo: dict[str, ZooEntry], names: list[str] | None) -> list[ZooEntry]:
    """The named entries (all when ``names`` is empty); a family name (``digits``) stands
    for all its entries; unknown names are an error."""
    if not names:
        return list(zoo.values())
    families = {e.family for e in zoo.values()}
    unknown = [n for n in names if n not in zoo and n not in families]
    if unknown:
        raise RpsInferError(f"unknown model(s) {unknown}; the zoo has {sorted(zoo)} (families {sorted(families)})")
    chosen = [e for n in names for e in ([zoo[n]] if n in zoo else [e for e in zoo.values() if e.family == n])]
    return list({e.name: e for e in chosen}.values())
