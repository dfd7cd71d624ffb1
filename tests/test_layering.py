"""The package's layering, read from its imports: the allowed dependency order, written once.

A module may import modules of its own layer or of a lower one, never of a higher one;
imports inside functions count as much as those at the top. The package root is not a
layer: nothing inside the package imports from it (it only re-exports the public API).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rps_infer"

# Lowest first. What each layer does with a model file:
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("rps_infer.errors", "rps_infer.util", "rps_infer.tables", "rps_infer.tensors",
                     "rps_infer.compare", "rps_infer.game", "rps_infer.schemas", "rps_infer.version",
                     "rps_infer.defaults", "rps_infer.plugins", "rps_infer.signals",
                     "rps_infer.noise", "rps_infer.progress")),
    ("networks", ("rps_infer.nets",)),
    ("files", ("rps_infer.formats", "rps_infer.inputs")),  # read and write model files; make inputs
    ("wire", ("rps_infer.serving.protos", "rps_infer.serving.codecs", "rps_infer.serving.wire",
              "rps_infer.client")),  # the two gRPC APIs' messages and a client
    ("backends", ("rps_infer.backends",)),  # run a file that exists
    ("parity", ("rps_infer.layers", "rps_infer.signatures", "rps_infer.verify", "rps_infer.api",
                "rps_infer.testing")),  # compare two runs
    ("convert", ("rps_infer.convert",)),  # produce a new file, proven before it is written
    ("runtime", ("rps_infer.runtime",)),  # a file + a spec -> a backend (builds variants via convert)
    ("families", ("rps_infer.families",)),
    ("zoo", ("rps_infer.zoo",)),
    ("project", ("rps_infer.project", "rps_infer.scaffold")),  # a repository's settings and declared models
    ("serving", ("rps_infer.serving",)),
    ("bench", ("rps_infer.bench", "rps_infer.benchmarks")),
    ("commands", ("rps_infer.demo", "rps_infer.cli", "rps_infer.__main__")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """Index of the layer whose prefix matches ``module`` most specifically."""
    best, length = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return best


def _is_module(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every ``rps_infer`` import in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "rps_infer"]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            if node.module and node.module.split(".")[0] == "rps_infer":
                # ``from package import submodule`` depends on the submodule, not on the package
                names = [a.name for a in node.names]
                subs = [f"{node.module}.{n}" for n in names if _is_module(f"{node.module}.{n}")]
                rest = [n for n in names if not _is_module(f"{node.module}.{n}")]
                found += [(node.lineno, sub, []) for sub in subs]
                if rest or not subs:
                    found.append((node.lineno, node.module, rest))
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "_pb2" not in p.name)


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_no_module_imports_upward_or_from_the_package_root(path):
    me = module_name(path)
    if me == "rps_infer":
        return
    mine = layer_of(me)
    for line, target, names in imports(path):
        assert target != "rps_infer", f"{me}:{line} imports {names} from the package root"
        theirs = layer_of(target)
        assert theirs <= mine, (f"{me} (layer {LAYERS[mine][0]}) imports {target} (layer {LAYERS[theirs][0]}) "
                                f"at line {line}: upward")


def test_every_module_is_in_a_layer():
    for path in SOURCES:
        if module_name(path) != "rps_infer":
            layer_of(module_name(path))


def test_the_onnx_runtime_backend_loads_no_converter_verifier_zoo_or_server():
    code = ("import sys, rps_infer.backends.onnxrt as m; m.OnnxRuntimeBackend._infer_impl; "
            "print(sorted(n for n in sys.modules if n.startswith(('rps_infer.convert', 'rps_infer.verify', "
            "'rps_infer.zoo', 'rps_infer.serving', 'rps_infer.families', 'rps_infer.runtime'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_module_over_400_lines_and_no_function_over_60():
    too_long = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            too_long.append(f"{module_name(path)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, too_long


def test_the_layering_test_catches_an_upward_import(tmp_path):
    """The check can fail: a backend importing the converter is reported."""
    planted = PACKAGE / "backends" / "onnxrt.py"
    text = planted.read_text(encoding="utf-8") + "\n\ndef _planted():\n    from rps_infer.convert import convert\n"
    fake = tmp_path / "onnxrt.py"
    fake.write_text(text, encoding="utf-8")
    upward = [(line, target) for line, target, _ in imports(fake) if layer_of(target) > layer_of("rps_infer.backends")]
    assert upward and upward[0][1] == "rps_infer.convert"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at any depth; a name imported from a package
    counts as its submodule when it is one, else as the package)."""
    modules = {module_name(p) for p in SOURCES}

    def owner(target: str) -> str:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target

    graph = {}
    for path in SOURCES:
        me = module_name(path)
        graph[me] = {owner(t) for _, t, _ in imports(path)} - {me, ""}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other in a circle (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_not_even_inside_functions():
    assert cycles(import_graph()) == []


def test_the_circle_check_finds_a_planted_circle():
    graph = import_graph()
    graph["rps_infer.errors"] = graph["rps_infer.errors"] | {"rps_infer.zoo"}  # zoo imports errors already
    assert any({"rps_infer.errors", "rps_infer.zoo"} <= set(group) for group in cycles(graph))
