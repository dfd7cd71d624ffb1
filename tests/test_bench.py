"""rps-infer bench: the sweep refuses to time a wrong model, and writes every report file."""

import functools
import json
from pathlib import Path

import pytest

from rps_infer import zoo
from rps_infer.bench import report as reports
from rps_infer.bench.machine import runner_class, slug
from rps_infer.bench.sweep import sweep
from rps_infer.cli import main
from rps_infer.formats import gojson

from .onnx_graphs import mlp_graph


def test_sweep_times_only_backends_with_parity(built_zoo, tmp_path):
    entry = built_zoo["policy"]
    result = sweep(entry, ["onnxrt-cpu", "pyt-cpu", "onnxrt-cuda"], [1, 4], budget_s=0.01)
    assert [(r.backend, r.batch) for r in result.rows] == [("onnxrt-cpu", 1), ("onnxrt-cpu", 4),
                                                           ("pyt-cpu", 1), ("pyt-cpu", 4)]
    assert "onnxrt-cuda" in result.skipped and "CUDAExecutionProvider" in result.skipped["onnxrt-cuda"]
    for r in result.rows:
        assert 0 < r.min_us <= r.p25_us <= r.p50_us <= r.p75_us <= r.p90_us <= r.p99_us and r.samples >= 50
        assert r.stddev_us > 0
        # measured throughput (items over the timed wall time), not batch / p50 re-labelled
        assert r.items_per_s == pytest.approx(r.batch / (r.mean_us * 1e-6), rel=1e-9)
        assert r.items_per_s != pytest.approx(r.batch / (r.p50_us * 1e-6), rel=1e-9)
    assert [r.speedup_vs_eager for r in result.rows if r.backend == "pyt-cpu"] == [1.0, 1.0]


def test_sweep_refuses_to_time_a_broken_export(built_zoo, tmp_path):
    entry = built_zoo["policy"]
    broken_build = tmp_path / "build"
    broken = zoo.ZooEntry(**{**entry.__dict__, "build_dir": broken_build})
    mlp_graph(gojson.read(entry.source), broken.onnx_path.parent.mkdir(parents=True) or broken.onnx_path,
              bug="log-softmax")
    result = sweep(broken, ["onnxrt-cpu"], [1], budget_s=0.01)
    assert result.rows == []
    assert "parity FAILED, not timed" in result.skipped["onnxrt-cpu b1"]


def test_bench_command_writes_json_csv_markdown_and_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RPS_INFER_ZOO", str(zoo.default_zoo_path()))
    assert main(["bench", "--backends", "onnxrt-cpu,pyt-cpu", "--batch-sizes", "1,8", "--budget", "0.01",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "p50 us" in out and "vs eager" in out and "onnxrt-cpu" in out
    (folder,) = tmp_path.iterdir()
    files = {p.name for p in folder.iterdir()}
    assert files == {"report.json", "report.csv", "report.md", "latency.png", "throughput.png"}
    for png in ("latency.png", "throughput.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((folder / "report.json").read_text())
    assert data["machine"]["runner_class"] == runner_class()
    assert data["machine"]["versions"]["onnxruntime"] and data["threads"] == 1
    assert {r["backend"] for r in data["rows"]} == {"onnxrt-cpu", "pyt-cpu"}
    assert data["rows"][0]["runtime"]["active_providers"] == ["CPUExecutionProvider"]
    md = (folder / "report.md").read_text()
    assert "| onnxrt-cpu | 1 |" in md and data["machine"]["cpu_model"] in md
    assert (folder / "report.csv").read_text().splitlines()[0].startswith("backend,batch,p50_us")

    assert main(["bench", "--backends", "onnxrt-cpu", "--batch-sizes", "1", "--budget", "0.01",
                 "--out", str(tmp_path / "again"), "--compare", str(folder / "report.json")]) == 0
    assert "ratio" in capsys.readouterr().out


def test_bench_compare_refuses_a_file_that_is_not_a_report(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert main(["bench", "--compare", str(bad)]) == 2
    assert "not an rps-infer bench report" in capsys.readouterr().err


def test_compare_lines_give_ratios():
    machine = {"runner_class": "r"}
    old = {"created": "a", "machine": machine, "rows": [{"backend": "x", "batch": 1, "p50_us": 10.0}]}
    new = {"created": "b", "machine": machine, "rows": [{"backend": "x", "batch": 1, "p50_us": 15.0}]}
    assert "1.50x (50% slower)" in reports.compare_lines(old, new)[-1]


def test_runner_class_slug():
    assert slug("Intel(R) Xeon(R) CPU @ 2.10GHz") == "intel-xeon-2.10ghz"
    assert slug("AMD EPYC 7B13") == "amd-epyc-7b13"
    assert runner_class().startswith(("cpu-", "gpu-"))


def test_bench_over_grpc_reports_the_echoes_the_naive_server_and_inprocess(built_zoo, tmp_path, capsys, monkeypatch):
    """22 loads (the service, 4 echoes and the naive server per case), each as short as still
    counts calls: a report of what was measured, not a measurement."""
    from rps_infer.bench.loadgen.generator import ClientPool
    from rps_infer.serving.launch import ServerProcess, serve_command

    # Each load begins when its client processes are ready (about 0.6 s here), not after the
    # 1.5 s floor a timed run leaves them; tests/test_loadgen.py checks the pool waits for them.
    monkeypatch.setattr(ClientPool, "__init__", functools.partialmethod(ClientPool.__init__, startup_s=0.0))
    with ServerProcess(serve_command("--policy", str(built_zoo["policy"].onnx_path),
                                     "--value", str(built_zoo["value"].onnx_path))) as server:
        assert main(["bench", "--target", server.target, "--api", "neural,v2", "--model", "value",
                     "--batch-sizes", "1,8", "--concurrency", "2", "--duration", "0.2", "--warmup", "0.1",
                     "--echo", "--naive", "--inprocess", "--server-pid", str(server.pid), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "vs echo" in out and "cpu us/req" in out
    (folder,) = tmp_path.iterdir()
    data = json.loads((folder / "report.json").read_text())
    assert data["kind"] == "grpc"
    series = {(r["series"], r["api"], r["batch"], r["concurrency"]) for r in data["rows"]}
    assert ("service", "v2", 8, 2) in series and ("echo-sync", "neural", 1, 2) in series
    assert ("echo-aio", "v2", 8, 2) in series and ("naive", "neural", 8, 2) in series
    assert ("echo-sync-iomgr", "neural", 1, 2) in series  # the service's I/O path: a floor too
    assert ("echo-aio-iomgr", "v2", 8, 2) in series
    assert ("naive", "v2", 8, 2) not in series  # the naive script speaks the NeuralService only
    assert ("inprocess", "-", 8, 1) in series
    service = [r for r in data["rows"] if r["series"] == "service"]
    assert all(r["requests"] > 0 and not r["errors"] for r in service)
    assert all(r["ratio_vs_echo"] > 0 and r["server_cpu_us_per_req"] > 0 for r in service)
    assert {r["rpc"] for r in service} == {"Predict", "BatchPredict", "ModelInfer"}
    assert (folder / "latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| service | v2 | ModelInfer | 8 | 2 |" in (folder / "report.md").read_text()


@pytest.mark.parametrize(("backends", "message"), [
    ("onnxrt-cuda", "nothing was measured (onnxrt-cuda: "),  # a CPU machine: skipped, so nothing to report
    ("onnxrt-gpu", "onnxrt has no device 'gpu'"),  # a typo: refused before any work
    ("onnxruntime-cpu", "backend must be one of"),
])
def test_bench_that_measures_nothing_exits_2_and_writes_nothing(tmp_path, capsys, backends, message):
    if backends == "onnxrt-cuda" and "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("this machine has CUDA")
    assert main(["bench", "--model", "policy", "--backends", backends, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_bench_ab_compares_two_revisions_and_writes_ratios(tmp_path, capsys):
    """The same code on both sides (HEAD against HEAD, the working tree left out): ratios near 1."""
    from rps_infer.bench.runners.revisions import has_history

    if not has_history(Path(__file__).resolve().parent.parent):
        pytest.skip("no git history in this checkout")
    code = main(["bench", "--ab", "HEAD", "HEAD", "--model", "policy", "--backends", "onnxrt-cpu",
                 "--batch-sizes", "1", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    if code == 2 and "predates the A/B gate" in captured.err:
        pytest.skip("HEAD predates the A/B worker (the commit that adds it)")
    assert code == 0, captured.err
    (folder,) = tmp_path.iterdir()
    assert {p.name for p in folder.iterdir()} == {"report.json", "report.csv", "report.md", "ratios.png"}
    row = json.loads((folder / "report.json").read_text())["rows"][0]
    assert row["status"] == "compared" and 0.9 < row["ratio"] < 1.1 and row["verdict"] != "REGRESSION"
    assert "head/base" in (folder / "report.md").read_text() and "interval" in captured.out
