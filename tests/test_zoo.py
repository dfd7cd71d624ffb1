"""The zoo manifest and building it. Parity of every zoo model on every backend it lists, at batch
1, 3 and each of its batch sizes, is the declared suite's test_parity (rps_infer/benchmarks/
test_models.py, part of the unit run); the registry coverage is here."""

import shutil
from pathlib import Path

import pytest

from rps_infer import zoo
from rps_infer.backends.spec import BackendSpec
from rps_infer.errors import ConfigError, RpsInferError

ZOO = zoo.load_zoo()
# Models with ci = false (unet-full) are built and checked on demand, not in every run.
CASES = [(name, spec) for name, entry in ZOO.items() if entry.ci for spec in entry.backends]


def test_manifest_loads_with_the_bundled_models():
    assert {"policy", "value", "unet-ci"} <= set(ZOO)
    for entry in (ZOO["policy"], ZOO["value"]):
        assert entry.source.is_file() and entry.tolerance == "fp32" and entry.ci
        assert entry.onnx_path.name == f"{entry.name}.onnx"


def test_every_zoo_model_and_backend_has_a_runnable_parity_case():
    """Registry coverage: each zoo model has parity cases, and each backend it lists is one
    this project implements (its class loads) on a device that backend knows."""
    from rps_infer.backends import registry
    from rps_infer.backends.base import Backend

    assert {name for name, _ in CASES} == {name for name, e in ZOO.items() if e.ci}
    for name, spec in CASES:
        parsed = BackendSpec.parse(spec)
        info = registry.get(parsed.backend)
        assert issubclass(info.load(), Backend) and parsed.device in info.devices, f"{name}: {spec!r}"


def test_build_writes_every_artifact_and_skips_up_to_date(built_zoo):
    entry = built_zoo["policy"]
    assert entry.is_built()
    assert all(p.is_file() for p in entry.artifacts().values())
    messages = []
    zoo.build([entry], progress=messages.append)
    assert messages == ["policy: up to date"]


def _write_zoo(tmp_path: Path, table: str) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "fixtures").mkdir()
    shutil.copy(ZOO["value"].source, tmp_path / "fixtures" / "value.json")
    path = tmp_path / "models" / "zoo.toml"
    path.write_text(table)
    return path


GOOD = """[models.v]
family = "rps-mlp"
source = "../fixtures/value.json"
reference = "numpy-fp64"
tolerance = "fp32"
backends = ["onnxrt-cpu"]
batch_sizes = [1, 8]
ci = true
inputs = "rps-positions"
"""


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace('backends = ["onnxrt-cpu"]\n', ""), "models.v.backends"),  # only files have a default
        (lambda t: t.replace('"fp32"', '"fp99"'), "models.v.tolerance"),
        (lambda t: t.replace("[1, 8]", "[0]"), "models.v.batch_sizes"),
        (lambda t: t.replace("ci = true", 'ci = "yes"'), "models.v.ci"),
        (lambda t: t.replace("value.json", "nope.json"), "models.v.source"),
        (lambda t: t.replace('"rps-mlp"', '"cnn"'), "models.v.family"),
        (lambda t: t.replace('["onnxrt-cpu"]', '"onnxrt"'), "models.v.backends"),
        (lambda t: t.replace("[models.v]", "[models.a/b]").replace("a/b", '"a/b"'), "models.a/b.<name>"),
        (lambda t: "", "models"),
        (lambda t: t + "[[", "<file>"),
    ],
    ids=["missing-key", "bad-preset", "bad-batch", "bad-ci", "missing-source", "bad-family",
         "bad-backends", "bad-name", "empty", "bad-toml"],
)
def test_malformed_manifest_names_the_key(tmp_path, edit, field):
    path = _write_zoo(tmp_path, edit(GOOD))
    with pytest.raises(ConfigError) as info:
        zoo.load_zoo(path)
    assert info.value.field.startswith(field), str(info.value)
    assert "\n" not in str(info.value)


def test_a_table_may_leave_out_what_has_a_default(tmp_path):
    lean = "\n".join(line for line in GOOD.splitlines()
                     if not line.startswith(("reference", "tolerance", "batch_sizes", "ci", "inputs")))
    (entry,) = zoo.load_zoo(_write_zoo(tmp_path, lean)).values()
    assert (entry.reference, entry.tolerance, entry.batch_sizes, entry.ci, entry.inputs) == \
        ("numpy-fp64", "fp32", (1,), True, None)


def test_select_refuses_unknown_names_and_unbuilt_artifacts(tmp_path):
    entries = zoo.load_zoo(_write_zoo(tmp_path, GOOD))
    assert [e.name for e in zoo.select(entries, [])] == ["v"]
    with pytest.raises(RpsInferError, match="unknown model"):
        zoo.select(entries, ["nope"])
    with pytest.raises(RpsInferError, match="not built"):
        entries["v"].backend("onnxrt-cpu")
    with pytest.raises(RpsInferError, match="backend must be one of"):
        entries["v"].backend("jax-cpu")


@pytest.mark.parametrize(("names", "heavy"), [([], False), (["all"], True), (["unet-full"], True)])
def test_models_build_without_names_builds_the_ci_set(monkeypatch, capsys, names, heavy):
    from rps_infer.cli import main

    built = []
    monkeypatch.setattr(zoo, "build", lambda entries, **kwargs: built.extend(e.name for e in entries))
    assert main(["models", "build", *names]) == 0
    assert ("unet-full" in built) == heavy
    assert ("rps-infer models build NAME" in capsys.readouterr().out) == (not names)
