"""The one schema mechanism for the project's own files (pydantic): the zoo manifest, a
repository's sidecar files, the gate's settings and the latency baselines each have one
schema, and every violation becomes one :class:`~rps_infer.errors.ConfigError` naming the
file, the key, what was expected and what was found.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from rps_infer.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """A schema that refuses unknown keys and is immutable once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _expected(err: dict) -> str:
    """What pydantic expected, in words a user knows from the file."""
    ctx = err.get("ctx") or {}
    if err["type"] == "missing":
        return "a value (required key)"
    if err["type"] == "extra_forbidden":
        return "no such key"
    if "expected" in ctx:
        return f"one of {ctx['expected']}"
    return err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")


def validated(model: type[M], data: object, where: str | Path, prefix: str = "", **context: Any) -> M:
    """``model`` validated from ``data``, or a :class:`ConfigError` for the first problem:
    the file ``where``, the key (``prefix`` + pydantic's location), expected and found.
    ``context`` reaches the schema's validators (e.g. the folder relative paths start from)."""
    try:
        return model.model_validate(data, context=context or None)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join([prefix, *map(str, err["loc"])] if prefix else map(str, err["loc"])) or "<top>"
        found = "nothing" if err["type"] == "missing" else repr(err.get("input"))[:80]
        more = len(exc.errors()) - 1
        raise ConfigError(where, key, _expected(err) + (f" (and {more} more problem(s))" if more else ""),
                          found) from None


def read_toml(path: Path, what: str) -> dict:
    """A TOML file as a dict, or a :class:`ConfigError` saying why it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "<file>", what, "no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(path, "<file>", f"{what} in valid TOML", str(exc)) from None
