"""What ``rps-infer init`` writes into a repository: model tables in its settings, and the files a
project needs (the suite's test file, a CI workflow, a ``.gitignore`` line).

Settings go into ``[tool.rps_infer]`` of ``pyproject.toml`` (edited with tomlkit, so the rest
of the file keeps its formatting), or into ``rps_infer.toml`` when that is where they are or
there is no ``pyproject.toml``. Every table is validated by the zoo's own schema, with its
files opened, before anything is written; then each file is written atomically. Files that
exist already are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import tomlkit

from rps_infer.errors import RpsInferError
from rps_infer.project import CONFIG_FILE, PYPROJECT
from rps_infer.util import atomic_write


class Scaffold:
    """Model tables to add to a project's settings, and the files to write beside them."""

    def __init__(self, root: Path, config_file: Path | None) -> None:
        self.root = root
        self.config = config_file or (root / PYPROJECT if (root / PYPROJECT).is_file() else root / CONFIG_FILE)
        text = self.config.read_text(encoding="utf-8") if self.config.is_file() else ""
        self.document = tomlkit.parse(text)
        self.tables: dict[str, dict] = {}
        self._replace: set[str] = set()

    @property
    def in_pyproject(self) -> bool:
        """Whether the settings live in ``pyproject.toml`` (under ``[tool.rps_infer]``)."""
        return self.config.name == PYPROJECT

    def _settings(self):
        """The settings table of the document (created if missing)."""
        if not self.in_pyproject:
            return self.document
        tool = self.document.setdefault("tool", tomlkit.table(is_super_table=True))
        return tool.setdefault("rps_infer", tomlkit.table())

    def declare(self, name: str, model: Path, *, reference: Path | None, backends: Sequence[str],
                batch_sizes: Sequence[int], inputs: str | None, tolerance: str | None, hints, replace: bool) -> None:
        """Add a model table (paths relative to the project root); refuses a name already declared."""
        existing = self._settings().get("models", {})
        if isinstance(existing, str):
            raise RpsInferError(f"{self.config}: models = {existing!r} names a manifest; add the model there")
        if (name in existing and not replace) or name in self.tables:
            raise RpsInferError(f"{self.config} already declares a model {name!r}: pass --name, or --force to "
                                "replace it")
        table = {"path": self._relative(model)}
        if reference is not None:
            table["reference_file"] = self._relative(reference)
        table["backends"] = list(backends) or _default_backends(model, reference)
        table["batch_sizes"] = list(batch_sizes)
        if inputs is not None:
            table["inputs"] = inputs if not (self.root / inputs).exists() else self._relative(self.root / inputs)
        if tolerance is not None:
            table["tolerance"] = tolerance
        table.update(self._hints(hints))
        self.tables[name] = table
        if replace:
            self._replace.add(name)

    def _relative(self, path: Path) -> str:
        path = Path(path).resolve()
        if not path.is_relative_to(self.root):
            raise RpsInferError(f"{path} lies outside the project ({self.root}); the gate times each revision's own "
                                "files, so declared files must be in the repository")
        return path.relative_to(self.root).as_posix()

    def _hints(self, hints) -> dict:
        keys: dict = {}
        if hints.torch_model:
            keys["torch_model"] = hints.torch_model
        if hints.torch_kwargs:
            keys["torch_kwargs"] = dict(hints.torch_kwargs)
        if hints.python_path:
            keys["python_path"] = [self._relative(p) for p in hints.python_path]
        if hints.input_shapes:
            keys["input_shapes"] = {k: list(v) for k, v in hints.input_shapes.items()}
        return keys

    def validate(self) -> None:
        """Every new table through the zoo's schema, its files opened (a ConfigError names the key)."""
        from rps_infer import zoo
        from rps_infer.formats import open_model

        prefix = "tool.rps_infer.models" if self.in_pyproject else "models"
        entries = zoo.load_tables(self.tables, self.config, self.root, self.root / ".rps_infer" / "build",
                                  prefix=prefix, default_family="file")
        for entry in entries.values():
            hints = entry.params.hints()
            for path in filter(None, (entry.params.path, entry.params.reference_file)):
                open_model(path, hints=hints)

    def write(self, files: Mapping[Path, str], ignore_line: str) -> list[tuple[Path, str]]:
        """Validate, then write the settings and each of ``files`` that does not exist yet, and add
        ``ignore_line`` to ``.gitignore``; returns (path, what happened) per file."""
        self.validate()
        settings = self._settings()
        models = settings.setdefault("models", tomlkit.table(is_super_table=True))
        for name, table in self.tables.items():
            if name in self._replace and name in models:
                del models[name]
            models[name] = _toml_table(table)
        done = [(self.config, "declared " + ", ".join(self.tables))]
        atomic_write(self.config, lambda tmp: tmp.write_text(tomlkit.dumps(self.document), encoding="utf-8"))
        for relative, text in files.items():
            path = self.root / relative
            if path.exists():
                done.append((path, "kept (exists)"))
                continue
            atomic_write(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
            done.append((path, "wrote"))
        done.append(self._ignore(ignore_line))
        return done

    def _ignore(self, line: str) -> tuple[Path, str]:
        path = self.root / ".gitignore"
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if line in text.splitlines():
            return path, f"kept ({line} listed)"
        new = text + ("" if not text or text.endswith("\n") else "\n") + f"{line}\n"
        atomic_write(path, lambda tmp: tmp.write_text(new, encoding="utf-8"))
        return path, f"added {line}"


def _default_backends(model: Path, reference: Path | None) -> list[str]:
    """The model's own backend, and the reference's where it differs, on the CPU."""
    from rps_infer.backends import registry
    from rps_infer.formats import detect_format

    names = [registry.default_for(detect_format(p)) for p in (model, reference) if p is not None]
    return [f"{name}-cpu" for name in dict.fromkeys(names)]


def _toml_table(values: Mapping):
    """A TOML table whose nested mappings are inline tables (one line each)."""
    table = tomlkit.table()
    for key, value in values.items():
        if isinstance(value, Mapping):
            inline = tomlkit.inline_table()
            inline.update({k: list(v) if isinstance(v, tuple) else v for k, v in value.items()})
            table[key] = inline
        else:
            table[key] = value
    return table
