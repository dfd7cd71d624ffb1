"""Parity that cannot be fooled: planted export bugs in real Go files fail, with the layer
they live in and a likely cause; every correct export passes."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from rps_infer.convert import convert
from rps_infer.formats import gojson, open_model
from rps_infer.nets.mlp import random_weights
from rps_infer.verify import compare_models

from .conftest import shared_params


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Go file -> its correct dynamo ONNX export (built once per file)."""
    made = {}

    def export(path):
        if path not in made:
            made[path] = convert(path, "onnx", tmp_path_factory.mktemp("export") / f"{path.stem}.onnx").path
        return made[path]

    return export


def _initializer(model: onnx.ModelProto, layer: str) -> onnx.TensorProto:
    """The weight (2-D) or bias (1-D) initializer of the hidden or output layer of an MLP export."""
    weights = [i for i in model.graph.initializer if len(i.dims) == 2]
    biases = [i for i in model.graph.initializer if len(i.dims) == 1]
    group = weights if layer.endswith("weight") else biases
    return group[0] if layer.startswith("hidden") else group[-1]


def _planted(source, tmp_path, name, edit) -> str:
    model = onnx.load(str(source))
    edit(model)
    out = tmp_path / f"{name}.onnx"
    onnx.save(model, str(out))
    return out


def _scale(layer, k):
    def edit(model):
        init = _initializer(model, layer)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(k), init.name))
    return edit


def _shift_bias(layer, by):
    """Add ``by`` to the bias of ``layer`` (hidden or out); an export of a zero bias (the NEAT files)
    may have none, so one is added to its Gemm."""
    def edit(model):
        weight = _initializer(model, f"{layer}.weight")
        gemm = next(n for n in model.graph.node if weight.name in n.input)
        if len(gemm.input) < 3:
            size = weight.dims[0]
            model.graph.initializer.append(numpy_helper.from_array(np.zeros(size, np.float32), f"{layer}.bias"))
            gemm.input.append(f"{layer}.bias")
        init = next(i for i in model.graph.initializer if i.name == gemm.input[2])
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(by), init.name))
    return edit


def _head(op):
    """Replace the final activation by ``op`` (None: drop it, the logits become the output)."""
    def edit(model):
        last = model.graph.node[-1]
        if op is None:
            model.graph.node.remove(last)
            for node in model.graph.node:
                node.output[:] = [last.output[0] if o == last.input[0] else o for o in node.output]
            return
        last.op_type = op
        del last.attribute[:]
        if op == "LogSoftmax":
            last.attribute.append(onnx.helper.make_attribute("axis", -1))
    return edit


def _reinterpret_hidden(model):
    init = _initializer(model, "hidden.weight")
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w.T).reshape(w.shape), init.name))


def _verify(reference, candidate):
    return compare_models(open_model(reference), open_model(candidate))


@pytest.mark.parametrize("path", shared_params())
def test_a_correct_export_passes_and_names_every_layer(path, exports):
    report = _verify(path, exports(path))
    assert report, report.render(layers=True)
    assert [row.source is not None for row in report.shown.layers] == [True] * 4


@pytest.mark.parametrize("k", [1.001, 1.05, 2.0, 0.5])
@pytest.mark.parametrize("path", shared_params())
def test_a_scaled_output_layer_fails_at_the_logits_and_is_named(path, k, exports, tmp_path):
    report = _verify(path, _planted(exports(path), tmp_path, "scaled", _scale("out.weight", k)))
    text = report.render()
    assert not report, text
    assert "layers agree up to the hidden ReLU" in text and "the first to differ is the logits" in text
    assert f"likely cause: a scaled layer (k = {k!r})" in text


@pytest.mark.parametrize("path", shared_params())
def test_a_scaled_hidden_layer_and_a_shifted_bias_fail(path, exports, tmp_path):
    hidden = _verify(path, _planted(exports(path), tmp_path, "hidden", _scale("hidden.weight", 1.001)))
    assert not hidden and "the first layer compared, the hidden pre-activation, already differs" in hidden.render()
    assert "a scaled layer (k = 1.001)" in hidden.render()
    hidden_bias = _verify(path, _planted(exports(path), tmp_path, "hidden-bias", _shift_bias("hidden", 1e-3)))
    assert not hidden_bias and "hidden pre-activation, already differs" in hidden_bias.render()
    out_bias = _verify(path, _planted(exports(path), tmp_path, "out-bias", _shift_bias("out", 1e-3)))
    logits = next(r for r in out_bias.shown.layers if r.layer == "logits")
    if logits.report.max_allowance > 1e-3 and out_bias:
        # Logits in the thousands (the trained policies): a float32 ulp there is ~1e-3, so a
        # 1e-3 shift of their bias is below what float32 can resolve. Only there may it pass.
        assert logits.report.max_abs < logits.report.max_allowance
    else:
        assert not out_bias and "the first to differ is the logits" in out_bias.render(), out_bias.render()
    reinterpreted = _verify(path, _planted(exports(path), tmp_path, "reinterpreted", _reinterpret_hidden))
    assert not reinterpreted and "reinterpreted weights" in reinterpreted.render()


@pytest.mark.parametrize("path", shared_params())
def test_a_wrong_head_fails_after_agreeing_logits_with_its_cause(path, exports, tmp_path):
    kind = gojson.read(path).kind
    heads = {"policy": {None: "the final softmax is missing", "LogSoftmax": "log-softmax instead of softmax"},
             "value": {None: "the final sigmoid is missing", "Tanh": "tanh instead of sigmoid"}}[kind]
    for op, cause in heads.items():
        report = _verify(path, _planted(exports(path), tmp_path, f"head-{op}", _head(op)))
        text = report.render()
        assert not report, text
        if kind == "value" or op is not None:
            assert "layers agree up to the logits" in text, text
        assert f"likely cause: {cause}" in text, text


def test_transposed_weights_of_a_square_layer_are_named(tmp_path):
    weights = random_weights(np.random.default_rng(3), "policy", hidden_size=81)
    go = gojson.write(weights, tmp_path / "square.json")
    export = convert(go, "onnx", tmp_path / "square.onnx").path
    model = onnx.load(str(export))
    init = _initializer(model, "hidden.weight")
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(numpy_helper.to_array(init).T), init.name))
    onnx.save(model, str(tmp_path / "transposed.onnx"))
    report = _verify(go, tmp_path / "transposed.onnx")
    assert not report and "likely cause: transposed weights of a square layer" in report.render()


def test_the_json_report_carries_the_layer_table_and_the_cause(exports, tmp_path):
    path = shared_params()[0].values[0]
    if path is None:
        pytest.skip("no Go-trained models here")
    data = _verify(path, _planted(exports(path), tmp_path, "x2", _scale("out.weight", 2.0))).to_dict()
    assert data["likely_cause"].startswith("a scaled layer (k = 2.0)")
    assert [row["layer"] for row in data["batches"]["64"]["layers"]] == ["hidden.pre", "hidden.relu", "logits",
                                                                         "output"]


def _zoo_export_with_head(built_zoo, tmp_path, name, op):
    return _planted(built_zoo[name].onnx_path, tmp_path, f"{name}-{op}", _head(op))


@pytest.mark.slow
def test_serve_refuses_a_log_softmax_policy_and_a_value_without_sigmoid(built_zoo, tmp_path):
    import subprocess
    import sys

    from .server_process import ServerProcess

    policy = _zoo_export_with_head(built_zoo, tmp_path, "policy", "LogSoftmax")
    value = _zoo_export_with_head(built_zoo, tmp_path, "value", None)
    good = {"policy": str(built_zoo["policy"].onnx_path), "value": str(built_zoo["value"].onnx_path)}
    for flag, path, cause in (("--policy", policy, "log-softmax instead of softmax"),
                              ("--value", value, "the final sigmoid is missing"),
                              ("--value", good["policy"], "its output has shape [64, 9], not [N, 1]")):
        args = {**good, flag[2:]: str(path)}
        refused = subprocess.run([sys.executable, "-m", "rps_infer.cli", "serve", "--port", "0",
                                  "--policy", args["policy"], "--value", args["value"]],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2, refused.stderr
        (line,) = [x for x in refused.stderr.splitlines() if x.startswith("rps-infer serve: error:")]
        assert f"likely cause: {cause}" in line and "--allow-any-head" in line and "serving on" not in refused.stdout
    with ServerProcess("--policy", str(policy), "--value", str(value), "--allow-any-head") as proc:
        assert proc.target


@pytest.mark.parametrize(("option", "value"), [("--atol", "nan"), ("--rtol", "nan"), ("--atol", "-1"),
                                               ("--rtol", "inf")])
def test_tolerance_options_must_be_finite_and_non_negative(option, value, capsys):
    from rps_infer.cli import main

    assert main(["verify", "a.json", "b.onnx", option, value]) == 2
    assert f"argument {option}: must be finite and non-negative" in capsys.readouterr().err


def test_verify_layers_prints_the_table_on_success_and_json_carries_it(built_zoo, capsys):
    from rps_infer.cli import main

    entry = built_zoo["policy"]
    assert main(["verify", str(entry.source), str(entry.onnx_path), "--layers"]) == 0
    out = capsys.readouterr().out
    assert "hidden pre-activation" in out and "every layer agrees" in out and "allowance: float32" in out
    assert main(["verify", str(entry.source), str(entry.onnx_path), "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["likely_cause"] is None and data["divergence"] == "every layer agrees"


@pytest.mark.parametrize(("exporter", "opset", "written"), [("dynamo", 13, None), ("dynamo", 99, None),
                                                            ("legacy", 13, 13), ("dynamo", 20, 20)])
def test_convert_writes_the_opset_asked_for_or_refuses_in_one_line(built_zoo, tmp_path, capsys, exporter, opset,
                                                                   written):
    from rps_infer.cli import main

    out = tmp_path / "m.onnx"
    code = main(["convert", str(built_zoo["policy"].source), "--to", "onnx", "--out", str(out),
                 "--exporter", exporter, "--opset", str(opset)])
    err = capsys.readouterr().err
    if written is None:
        assert code == 2 and not out.exists()
        assert err.count("\n") == 1 and f"writes opsets 18-23, not {opset}" in err and "Traceback" not in err
    else:
        assert code == 0 and onnx.load(str(out)).opset_import[0].version == written and "Traceback" not in err


@pytest.mark.slow
def test_verify_through_a_running_server_gives_the_file_verdict(built_zoo, tmp_path, capsys):
    from rps_infer.cli import main

    from .server_process import ServerProcess

    policy, value = built_zoo["policy"], built_zoo["value"]
    scaled = _planted(policy.onnx_path, tmp_path, "scaled", _scale("out.weight", 1.05))
    with ServerProcess("--policy", str(policy.onnx_path), "--value", str(value.onnx_path),
                       "--model", f"scaled={scaled}") as good:
        for api, model in (("neural", "policy"), ("neural", "value"), ("v2", "policy")):
            source = policy.source if model == "policy" else value.source
            assert main(["verify", str(source), "--target", good.target, "--model", model, "--api", api]) == 0, (
                capsys.readouterr())
        assert main(["verify", str(policy.source), "--target", good.target, "--model", "scaled", "--api", "v2"]) == 1
        assert "FAIL" in capsys.readouterr().out
        assert main(["verify", str(policy.source), "--target", good.target, "--model", "nosuch", "--api", "v2"]) == 2
        assert "nosuch" in capsys.readouterr().err
