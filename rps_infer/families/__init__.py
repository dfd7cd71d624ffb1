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

from rps_infer.families.base import Family, Progress
from rps_infer.plugins import Registry

ENTRY_POINT_GROUP = "rps_infer.families"
__all__ = ["ENTRY_POINT_GROUP", "Family", "Progress", "families", "get", "register"]


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
