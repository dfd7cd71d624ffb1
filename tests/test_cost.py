"""The FPS / cost report (arithmetic checked by hand) and the multi-process throughput runs."""

import functools
import json

import pytest

from rps_infer import zoo
from rps_infer.bench import cost, processes
from rps_infer.bench.processes import run_processes, scaling
from rps_infer.cli import main
from rps_infer.errors import ProviderUnavailableError, RpsInferError

SWEEP = [  # what the sweep measured (items_per_s = batch / median latency)
    {"backend": "onnxrt-cpu", "batch": 1, "items_per_s": 400.0, "p50_us": 2500.0, "p99_us": 3000.0},
    {"backend": "onnxrt-cpu", "batch": 8, "items_per_s": 500.0, "p50_us": 16000.0, "p99_us": 17000.0},
    {"backend": "pyt-cpu", "batch": 1, "items_per_s": 50.0, "p50_us": 20000.0, "p99_us": 25000.0},
    {"backend": "pyt-cpu", "batch": 8, "items_per_s": 100.0, "p50_us": 80000.0, "p99_us": 90000.0},
]
PROCESSES = [{"backend": "onnxrt-cpu", "processes": 1, "fps": 400.0, "scaling_efficiency": 1.0},
             {"backend": "onnxrt-cpu", "processes": 2, "fps": 700.0, "scaling_efficiency": 0.875}]


def test_fps_rows_take_batch_1_the_best_batch_and_the_multi_process_run():
    ort, eager = cost.fps_rows(SWEEP, PROCESSES)
    assert (ort.fps_b1, ort.p50_ms_b1, ort.p99_ms_b1) == (400.0, 2.5, 3.0)
    assert (ort.best_batch, ort.fps_best_batch, ort.processes, ort.fps_processes) == (8, 500.0, 2, 700.0)
    assert ort.speedup_vs_eager_b1 == 8.0 and ort.speedup_vs_eager_best == 5.0
    assert ort.deployed_fps == (700.0, "2 processes, batch 1")
    assert eager.deployed_fps == (100.0, "1 process, batch 8") and eager.processes is None


def test_cost_rows_by_hand():
    rows = cost.fps_rows(SWEEP, PROCESSES)
    ort, eager = cost.cost_rows(rows, cost_per_hour=2.5, target_fps=250, effort_hours=40, hourly_rate=100)
    assert ort.usd_per_1000_fps_hours == pytest.approx(2.5 * 1000 / 700)
    assert eager.usd_per_1000_fps_hours == pytest.approx(25.0)
    assert (ort.machines_for_target, eager.machines_for_target) == (1, 3)  # ceil(250/700), ceil(250/100)
    assert ort.monthly_usd == pytest.approx(1 * 2.5 * 730) and eager.monthly_usd == pytest.approx(3 * 2.5 * 730)
    assert ort.monthly_savings_vs_eager_usd == pytest.approx(2 * 2.5 * 730)
    assert ort.break_even_months == pytest.approx(4000 / 3650)
    assert eager.monthly_savings_vs_eager_usd is None and eager.break_even_months is None


def test_savings_are_against_the_gpu_eager_run_when_there_is_one():
    sweep = [*SWEEP, {"backend": "pyt-cuda", "batch": 1, "items_per_s": 1000.0, "p50_us": 1000.0, "p99_us": 1200.0}]
    rows = {r.backend: r for r in cost.fps_rows(sweep, [])}
    assert rows["onnxrt-cpu"].speedup_vs_eager_b1 == pytest.approx(0.4)
    costs = {c.backend: c for c in cost.cost_rows(list(rows.values()), cost_per_hour=1.0, target_fps=1000)}
    assert costs["pyt-cpu"].monthly_savings_vs_eager_usd < 0 and costs["pyt-cuda"].break_even_months is None


def test_cost_needs_positive_prices():
    with pytest.raises(ValueError, match="positive"):
        cost.cost_rows(cost.fps_rows(SWEEP, []), cost_per_hour=0, target_fps=250)


@pytest.fixture(scope="module")
def policy_entry(built_zoo):
    return built_zoo["policy"]


def test_two_processes_run_the_same_window_and_add_up(policy_entry):
    single = run_processes(policy_entry, "onnxrt-cpu", processes=1, duration_s=1.0, warmup_s=0.3)
    double = run_processes(policy_entry, "onnxrt-cpu", processes=2, duration_s=1.0, warmup_s=0.3)
    assert len(double.per_process_fps) == 2 and all(f > 0 for f in double.per_process_fps)
    assert double.fps == pytest.approx(sum(double.per_process_fps))
    assert 0 < double.p50_ms <= double.p99_ms and double.calls > 0
    assert scaling(single, double) == pytest.approx(double.fps / (2 * single.fps))


def test_process_runs_refuse_zero_processes_and_name_a_missing_provider(policy_entry):
    with pytest.raises(RpsInferError, match="at least 1"):
        run_processes(policy_entry, "onnxrt-cpu", processes=0)
    with pytest.raises(ProviderUnavailableError, match="CUDAExecutionProvider"):
        run_processes(policy_entry, "onnxrt-cuda", processes=1, duration_s=0.5)


def test_bench_writes_the_fps_and_cost_report_with_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RPS_INFER_ZOO", str(zoo.default_zoo_path()))
    # The report's content, not its figures: each of the four process runs warms up for 0.2 s
    # (not 2) and counts 0.5 s of calls; test_two_processes_run_the_same_window_and_add_up checks them.
    monkeypatch.setattr(processes, "run_processes", functools.partial(processes.run_processes, warmup_s=0.2))
    assert main(["bench", "--model", "unet-ci", "--backends", "onnxrt-cpu,pyt-cpu", "--batch-sizes", "1,2",
                 "--budget", "0.01", "--processes", "2", "--process-seconds", "0.5", "--cost-per-hour", "2.5",
                 "--effort-hours", "40", "--hourly-rate", "100", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "FPS" in out and "USD per 1,000 FPS-hours" in out
    assert "rps-infer bench --model unet-ci" in (tmp_path.glob("*/report.md").__next__()).read_text()
    (folder,) = tmp_path.iterdir()
    assert {"fps.png", "cost.png"} <= {p.name for p in folder.iterdir()}
    data = json.loads((folder / "report.json").read_text())
    assert {(p["backend"], p["processes"]) for p in data["processes"]} == {
        ("onnxrt-cpu", 1), ("onnxrt-cpu", 2), ("pyt-cpu", 1), ("pyt-cpu", 2)}
    assert data["cost"]["cost_per_hour"] == 2.5 and len(data["cost"]["rows"]) == 2
    md = (folder / "report.md").read_text()
    assert data["machine"]["cpu_model"] in md and "break-even" in md.lower()


@pytest.mark.parametrize(("extra", "message"), [
    (["--effort-hours", "40"], "--hourly-rate"),
    (["--processes", "0"], "argument --processes: must be at least 1"),
])
def test_bench_refuses_half_given_cost_options(extra, message, tmp_path, capsys):
    assert main(["bench", "--model", "unet-ci", "--out", str(tmp_path), *extra]) != 0
    assert message in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
