"""The models a server serves: :class:`ServedModel` (a backend, its batcher, what the APIs
report about it) and :class:`ModelRegistry` (models by name and version, the request checks
both APIs share, the metadata both report).

Both the gRPC servicers (:mod:`rps_infer.serving.service`) and the REST routes
(:mod:`rps_infer.serving.rest`) go through the registry, so a request is checked, and
refused with the same message, whichever protocol it came by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import rps_infer.defaults as defaults
from rps_infer.backends.base import Backend
from rps_infer.errors import InvalidRequestError, ModelNotFoundError, ModelNotReadyError
from rps_infer.serving import codecs
from rps_infer.serving.batching import AdaptiveBatcher
from rps_infer.serving.config import Batching


@dataclass
class ServedModel:
    """One version of one model as the server sees it. ``error`` is set when it failed to load.

    The backend's specs are read once here: the handlers use them on every request."""

    name: str
    backend: Backend | None
    kind: str | None = None  # policy / value for the NeuralService API
    hidden_size: int = -1
    error: str | None = None
    batcher: AdaptiveBatcher | None = field(default=None, repr=False)
    version: str = "1"
    batching: Batching | None = None

    def __post_init__(self) -> None:
        if self.backend is not None:
            self.input_specs = self.backend.input_specs
            self.specs_by_name = {s.name: s for s in self.input_specs}
            self.datatypes = {s.name: _datatype(s.dtype) for s in self.input_specs}
            self.output_specs = self.backend.output_specs
            self.output_names = tuple(s.name for s in self.output_specs)
            self.first_input, self.first_output = self.input_specs[0].name, self.output_names[0]
            shape = self.input_specs[0].shape
            self.width = shape[1] if len(shape) > 1 else None
            self.fixed_batch = shape[0] if shape else None  # the model takes only this many rows

    @property
    def ready(self) -> bool:
        """Loaded and usable."""
        return self.error is None and self.backend is not None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Through the batcher when batching is on."""
        if self.batcher is not None:
            return self.batcher.infer(feeds)
        return self.backend.infer(feeds)


@dataclass
class ServingOptions:
    """Request limits shared by both APIs."""

    max_batch_size: int = defaults.MAX_BATCH_SIZE
    allow_nonfinite: bool = False


class ModelRegistry:
    """Served models by name and version; also says whether the server as a whole is ready.

    ``models`` maps each name to its default version (the highest); ``versions`` holds them all.
    """

    def __init__(self, models: list[ServedModel], options: ServingOptions) -> None:
        self.versions: dict[str, dict[str, ServedModel]] = {}
        for m in models:
            self.versions.setdefault(m.name, {})[m.version] = m
        self.models = {name: by[max(by, key=_version_order)] for name, by in self.versions.items()}
        self.options = options
        self.shutting_down = False

    def lookup(self, name: str, version: str | None = None) -> ServedModel:
        """Model ``name`` at ``version`` (None or "": the highest), ready or not; else NOT_FOUND."""
        if not version:
            model = self.models.get(name)
        else:
            model = self.versions.get(name, {}).get(version)
            if model is None and name in self.versions:
                raise ModelNotFoundError(f"model {name!r} has no version {version!r}; "
                                         f"versions: {sorted(self.versions[name], key=_version_order)}")
        if model is None:
            raise ModelNotFoundError(f"no model {name!r}; served: {sorted(self.models)}")
        return model

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """A ready model, or NOT_FOUND / UNAVAILABLE errors."""
        model = self.lookup(name, version)
        if not model.ready:
            raise ModelNotReadyError(f"model {name!r} is not ready: {model.error}")
        return model

    def ready(self) -> bool:
        """Every model loaded and not shutting down."""
        return not self.shutting_down and all(m.ready for by in self.versions.values() for m in by.values())

    def check_batch(self, rows: int) -> None:
        """Refuse empty batches and batches above --max-batch-size."""
        if rows == 0:
            raise InvalidRequestError("empty batch: expected at least 1 input")
        if rows > self.options.max_batch_size:
            raise InvalidRequestError(f"batch of {rows} exceeds the server's --max-batch-size "
                                      f"{self.options.max_batch_size}")

    def check_finite(self, name: str, array: np.ndarray) -> None:
        """Refuse NaN/Inf in float inputs unless --allow-nonfinite."""
        # One reduction: a float64 sum of float32 values is finite exactly when every value is.
        if (not self.options.allow_nonfinite and array.dtype.kind == "f"
                and not math.isfinite(array.sum(dtype=np.float64))):
            raise InvalidRequestError(f"input {name!r} contains NaN or Inf (start the server with "
                                      "--allow-nonfinite to accept them)")

    @staticmethod
    def check_inputs(model: ServedModel, names: list) -> None:
        """Refuse a request whose input names are not exactly the model's."""
        if sorted(map(str, names)) != sorted(model.specs_by_name):
            raise InvalidRequestError(f"model {model.name!r} expects inputs {sorted(model.specs_by_name)}, "
                                      f"got {names}")

    @staticmethod
    def check_input(model: ServedModel, name: str, datatype, shape) -> tuple[int, ...]:
        """Input ``name``'s shape as a tuple, once its datatype and shape fit the model's."""
        spec = model.specs_by_name[name]
        dims = codecs.check_shape(name, shape, codecs.MAX_ELEMENTS)
        want = model.datatypes[name]
        if datatype != want:
            raise InvalidRequestError(f"input {name!r}: expected datatype {want}, got {datatype!r}")
        if len(dims) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, dims,
                                                                                        strict=True)):
            expected = [-1 if d is None else d for d in spec.shape]
            raise InvalidRequestError(f"input {name!r}: expected shape {expected}, got {list(dims)}")
        return dims

    @staticmethod
    def check_outputs(model: ServedModel, wanted: list[str]) -> list[str]:
        """The outputs asked for (all when none), refusing names the model does not have."""
        wanted = wanted or list(model.output_names)
        unknown = [n for n in wanted if n not in model.output_names]
        if unknown:
            raise InvalidRequestError(f"unknown output(s) {unknown}; {model.name} has {list(model.output_names)}")
        return wanted

    def metadata(self, model: ServedModel) -> dict:
        """The v2 model metadata: names, datatypes, shapes (-1 dynamic), the versions served, the
        platform, and the serving parameters (batching) as the REST API reports them."""

        def tensors(specs) -> list[dict]:
            return [{"name": s.name, "datatype": codecs.datatype_of(s.dtype),
                     "shape": [-1 if d is None else d for d in s.shape]} for s in specs]

        batching = model.batching or Batching()
        return {"name": model.name, "versions": sorted(self.versions[model.name], key=_version_order),
                "platform": platform(model.backend), "inputs": tensors(model.input_specs),
                "outputs": tensors(model.output_specs),
                "parameters": {"max_batch_size": batching.max_batch_size,
                               "preferred_batch_sizes": list(batching.preferred_batch_sizes),
                               "max_queue_delay_us": batching.max_queue_delay_us}}


def _version_order(version: str) -> tuple[int, str]:
    """Versions compare as integers where they are (10 after 9)."""
    return (int(version), version) if version.isdigit() else (-1, version)


def _datatype(dtype: str) -> str | None:
    """The v2 datatype of an input's dtype, or None where the protocol has none (never matches)."""
    try:
        return codecs.datatype_of(dtype)
    except InvalidRequestError:
        return None


def platform(backend: Backend) -> str:
    """The v2 platform name of what ``backend`` runs."""
    return backend.platform
