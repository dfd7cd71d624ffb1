"""Model families: everything the zoo, the benchmarks and the demo ask about a kind of model.

A family says which keys of its own a zoo table takes (a schema), which references its
models are judged against, which artifacts a model has, how they are built (each proven
before it is written) and what they must be newer than. Everything else works from the
model files themselves: inputs come from the entry's input generator and the files'
input specs, echo answers from the files' output specs.

Adding a family is one module with a :class:`Family` plus one entry: here, through the
entry-point group ``rps_infer.families`` (an entry point names a :class:`Family`), or
:func:`register` at run time; then zoo tables that name it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rps_infer.plugins import Registry
from rps_infer.schemas import Strict

ENTRY_POINT_GROUP = "rps_infer.families"
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


def _builtins() -> tuple[Family, ...]:
    from rps_infer.families import digits, file, mlp, unet

    return mlp.FAMILY, unet.FAMILY, digits.FAMILY, file.FAMILY


_REGISTRY: Registry[Family] = Registry(ENTRY_POINT_GROUP, Family, _builtins, "model family")


def register(family: Family) -> Family:
    """Add (or replace) a family; returns it."""
    return _REGISTRY.register(family)


def families() -> dict[str, Family]:
    """Every family by name: the built-in ones, then those other packages register."""
    return _REGISTRY.all()


def get(name: str) -> Family:
    """The family called ``name``, or an error listing the known ones."""
    return _REGISTRY.get(name)
