"""``rps-infer demo``: build the zoo and show, per model family, that every conversion computes
the same function; then serve the classifiers and show what a client gets.

Each family names its section (:attr:`rps_infer.families.Family.demo`); the sections are here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rps_infer import tables
from rps_infer.backends.registry import load_target
from rps_infer.families import families
from rps_infer.zoo import build, load_zoo


def run(shared: Path) -> bool:
    """Build the CI models, print each family's section and the Go-trained files' matrices;
    True when everything agreed."""
    entries = [e for e in load_zoo().values() if e.ci]  # unet-full: on demand
    print("Building the model zoo (every conversion proves parity before it writes)...")
    build(entries, progress=lambda msg: print(f"  {msg}"))
    all_pass = True
    for name, family in families().items():
        mine = [e for e in entries if e.family == name]
        if mine and family.demo:
            all_pass &= bool(load_target(family.demo)(mine))
    all_pass &= shared_sections(shared)
    print("\nthe MLP matrices: max abs error between every pair on realistic game positions at batch 1, 3, 64; "
          "FAIL marks a pair outside the fp32 tolerance plus the float32 rounding bound")
    return all_pass


def shared_sections(shared: Path) -> bool:
    """A parity matrix for every Go-trained file in ``shared`` (converted into a temp folder)."""
    from rps_infer.families.mlp import build_artifacts

    files = sorted(shared.glob("*.model")) if shared.is_dir() else []
    if not files:
        print(f"\n(skipping the Go-trained models: no .model files in {shared})")
        return True
    all_pass = True
    with tempfile.TemporaryDirectory(prefix="rps-demo-") as tmp:
        for path in files:
            out = Path(tmp) / path.stem
            artifacts = {"onnx": out / "model.onnx", "pt": out / "model.pt",
                         "keras": out / "model.keras", "keras_onnx": out / "keras.onnx"}
            build_artifacts(path, artifacts)
            all_pass &= _matrix(f"Go-trained {path.name}", path, artifacts)
    return all_pass


def mlp_section(entries: list) -> bool:
    """The parity matrix of each zoo MLP: numpy float64, PyTorch, Keras and both ONNX exports."""
    return all([_matrix(f"zoo model {e.name!r} ({e.source.name})", e.source, e.artifacts()) for e in entries])


def _matrix(title: str, source: Path, artifacts: dict[str, Path]) -> bool:
    from rps_infer.formats import open_model
    from rps_infer.runtime import open_backend
    from rps_infer.verify import format_matrix, parity_matrix

    src = open_model(source)
    w = src.weights
    runners = {"numpy-fp64": open_backend(src, "numpy"), "PyTorch": open_backend(artifacts["pt"]),
               "Keras": open_backend(artifacts["keras"]), "ONNX(pt)": open_backend(artifacts["onnx"]),
               "ONNX(keras)": open_backend(artifacts["keras_onnx"])}
    pairs = parity_matrix(runners, w)
    print(f"\n{title}: {w.kind} {w.input_size}-{w.hidden_size}-{w.output_size}")
    print(format_matrix(list(runners), pairs))
    for r in runners.values():
        r.deactivate()
    return all(pairs.values())


def image_section(entries: list) -> bool:
    """ONNX vs PyTorch of each zoo image model: max abs error and PSNR."""
    ok = True
    for entry in entries:
        report = entry.check_parity(entry.backend("onnxrt-cpu"), "onnxrt-cpu", (1, 3),
                                    reference_label="PyTorch", candidate_label="ONNX")
        worst = min((o.psnr_db for r in report.results.values() for o in r.outputs), default=float("nan"))
        print(f"\nzoo model {entry.name!r} ({entry.family}): ONNX vs PyTorch max abs {report.max_abs_error():.2e}, "
              f"PSNR >= {worst:.1f} dB: {'PASS' if report else 'FAIL'}")
        ok &= bool(report)
    return ok


def classifier_section(entries: list) -> bool:
    """ONNX vs native on the whole test split per classifier, then the classifiers served."""
    from rps_infer.nets.digits import split

    ok = True
    rows = len(split()[1])
    for entry in entries:
        report = entry.check_parity(entry.backend("onnxrt-cpu"), "onnxrt-cpu", (rows,),
                                    reference_label="native", candidate_label="ONNX")
        (result,) = report.results.values()
        errors = {o.name: o for o in result.outputs}
        print(f"\nzoo model {entry.name!r} ({entry.params.estimator}): ONNX vs native on the {rows} test digits: "
              f"labels {'identical' if errors['label'].failing == 0 else 'DIFFER'}, probabilities max abs "
              f"{errors['probabilities'].max_abs:.1e} ({entry.tolerance}): {'PASS' if report else 'FAIL'}")
        ok &= bool(report)
    return _served_classifiers(entries) and ok


def _served_classifiers(entries: list) -> bool:
    """Serve the build folder as a model repository and show label and score of a few digits."""
    from rps_infer.client import V2Client
    from rps_infer.nets.digits import split
    from rps_infer.serving.launch import ServerProcess, serve_command

    repository = entries[0].onnx_path.parent
    x_test, y_test = split()[1][:6], split()[3][:6]
    print(f"\nrps-infer serve --model-repository {repository}: label (score) of the first "
          f"{len(y_test)} test digits over the v2 API")
    rows = [("true label", *(int(y) for y in y_test))]
    agree = True
    with ServerProcess(serve_command("--model-repository", str(repository))) as server, \
            V2Client(server.target) as client:
        client.wait_ready()
        for e in entries:
            out = client.infer(e.name, {"input": x_test})
            labels, scores = out["label"], out["probabilities"][range(len(y_test)), out["label"]]
            expected = e.reference_backend().infer({"input": x_test})["label"]
            agree &= bool((labels == expected).all())
            rows.append((e.name, *(f"{int(k)} ({p:.2f})" for k, p in zip(labels, scores, strict=True))))
    columns = ("model", *(f"digit {i + 1}" for i in range(len(y_test))))
    print(tables.render(columns, rows, numeric=columns[1:]))
    print(f"  served labels {'match' if agree else 'DO NOT match'} the native models' predictions")
    return agree
