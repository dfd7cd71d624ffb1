"""Reports say which code and which model files produced their numbers, and how spread they were."""

import hashlib
import json
import subprocess

import rps_infer.zoo as zoo
from rps_infer.bench import provenance
from rps_infer.cli import main


def test_source_names_the_checkout_commit_and_unknown_outside_one(tmp_path, monkeypatch):
    source = provenance.source()
    head = subprocess.run(["git", "-C", str(provenance.PACKAGE_DIR), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert source["commit"] == head and isinstance(source["dirty"], bool)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", tmp_path)  # an installed wheel: no checkout around it
    assert provenance.source() == {"commit": "unknown", "dirty": "unknown"}


def test_a_changed_byte_changes_the_digest_of_a_file_and_of_a_folder(tmp_path):
    model = tmp_path / "saved" / "variables.data"
    model.parent.mkdir()
    model.write_bytes(b"\x00" * 100)
    before = provenance.model_digests([model, model.parent, None, tmp_path / "missing.onnx"])
    assert before[str(model)] == hashlib.sha256(b"\x00" * 100).hexdigest() and len(before) == 2
    model.write_bytes(b"\x00" * 99 + b"\x01")
    after = provenance.model_digests([model, model.parent])
    assert all(after[k] != before[k] for k in after)


def test_a_bench_report_records_commit_model_digests_spread_and_measured_throughput(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RPS_INFER_ZOO", str(zoo.default_zoo_path()))
    assert main(["bench", "--model", "policy", "--backends", "onnxrt-cpu", "--batch-sizes", "1,8",
                 "--budget", "0.02", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "IQR us" in table and "min us" in table
    (folder,) = tmp_path.iterdir()
    data = json.loads((folder / "report.json").read_text())
    assert data["source"] == provenance.source()
    onnx = str(zoo.load_zoo()["policy"].onnx_path)
    assert data["models"][onnx] == provenance.sha256(zoo.load_zoo()["policy"].onnx_path)
    for row in data["rows"]:
        assert row["min_us"] <= row["p25_us"] <= row["p50_us"] <= row["p75_us"] and row["stddev_us"] > 0
        assert abs(row["items_per_s"] - row["batch"] * 1e6 / row["mean_us"]) < 1e-6 * row["items_per_s"]
    md = (folder / "report.md").read_text()
    assert data["source"]["commit"] in md and data["models"][onnx] in md and "IQR" in md
