"""Named registries other packages can extend: the backends and the model families.

A :class:`Registry` holds the package's own entries, then whatever installed packages
name in its entry-point group (each entry point names one entry object), then what is
:meth:`Registry.register`-ed at run time. Entry points are read once, on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from rps_infer.errors import RpsInferError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of type ``kind`` by their ``name``; ``what`` names them in errors."""

    def __init__(self, group: str, kind: type, builtins: Callable[[], Iterable[T]], what: str) -> None:
        self.group, self.kind, self.what = group, kind, what
        self._builtins = builtins
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add (or replace) an entry; returns it."""
        self._entries[entry.name] = entry
        return entry

    def all(self) -> dict[str, T]:
        """Every entry by name: built-in ones first, then those other packages register."""
        if not self._entries:
            from importlib.metadata import entry_points

            for entry in self._builtins():
                self.register(entry)
            for point in entry_points(group=self.group):
                entry = point.load()
                if not isinstance(entry, self.kind):
                    raise RpsInferError(f"entry point {point.name!r} ({point.value}) of {self.group} must name a "
                                        f"{self.kind.__name__}, not {type(entry).__name__}")
                self.register(entry)
        return self._entries

    def get(self, name: str) -> T:
        """The entry called ``name``, or an error listing the known ones."""
        known = self.all()
        if name not in known:
            raise RpsInferError(f"unknown {self.what} {name!r}; known: {', '.join(known)}")
        return known[name]
