"""What a model family is (:class:`Family`): the zoo's, the benchmarks' and the demo's questions
about a kind of model, answered by one module each (:mod:`rps_infer.families`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rps_infer.schemas import Strict

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: the zoo's ``family`` value.
        params: the schema of the family's own zoo keys (an entry's ``params``); its
            validators see ``info.context["root"]``, the folder paths are relative to.
        references: zoo ``reference`` name -> the backend spec that runs it for an entry.
        artifacts: entry -> artifact role (``onnx``, ``pt``, ``keras``, ``native``...) -> path;
            ``onnx`` is the serving artifact.
        build: (entry, progress) -> role -> parity report; writes every artifact, each proven
            against its source before it is written.
        definition: entry -> the file the artifacts must be newer than to be up to date.
        demo: ``"module:function"`` printing the demo's section for the family's zoo entries
            (given as a list; returns whether everything agreed), or None.
        reference_backend: entry -> the reference backend, where ``references`` cannot say it
            (a user's reference file); None: ``references``.
        open: (entry, artifact path) -> the opened model file, where the family knows more than
            the file (hints); None: :func:`rps_infer.formats.open_model`.
    """

    name: str
    params: type[Strict]
    references: Mapping[str, Callable[[Any], str]]
    artifacts: Callable[[Any], dict[str, Path]]
    build: Callable[[Any, Progress], dict]
    definition: Callable[[Any], Path]
    demo: str | None = None
    reference_backend: Callable[[Any], Any] | None = None
    open: Callable[[Any, Path], Any] | None = None
