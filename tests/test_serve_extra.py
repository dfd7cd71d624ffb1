"""The `serve` extra is enough to serve: a server whose interpreter refuses PyTorch,
TensorFlow, Keras and matplotlib loads ONNX models, answers over gRPC and HTTP, and stops
cleanly. Any import of those on the serve path, even one caught, fails the test.

The server is started as the image starts it: ``--model-repository`` only, no ``--policy`` /
``--value``. The repository's policy.onnx and value.onnx then serve the NeuralService (the
zoo's models are never built: that needs PyTorch)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request

import numpy as np

from rps_infer.client import NeuralClient, V2Client
from rps_infer.game import realistic_positions
from rps_infer.serving import launch

from .server_process import free_ports

BLOCKED = ("torch", "tensorflow", "keras", "matplotlib")
MARK = "BLOCKED IMPORT"

# Installed before anything else runs: refuses the frameworks (and their submodules) and
# says so on stderr, so that an import a caller catches and tolerates still shows.
HOOK = f"""
import sys, traceback

BLOCKED = {BLOCKED!r}
_early = [m for m in sys.modules if m.partition(".")[0] in BLOCKED]
assert not _early, f"imported before the hook: {{_early}}"


class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            print(f"{MARK} {{name}}", file=sys.stderr, flush=True)
            traceback.print_stack(file=sys.stderr)
            raise ImportError(f"{{name}} is blocked: the serve extra does not install it")
        return None


sys.meta_path.insert(0, _Refuse())
"""

# The server dies with the test process (SIGTERM when its parent exits), as tests/server_process.py's.
SERVE = HOOK + """
import ctypes, contextlib, signal
with contextlib.suppress(OSError):
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
from rps_infer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_hook_refuses_each_framework():
    # The planted check: the same hook must stop a direct import, or the serving test proves nothing.
    for name in (*BLOCKED, "torch.nn", "matplotlib.pyplot"):
        run = subprocess.run([sys.executable, "-c", HOOK + f"\nimport {name}\n"], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode != 0 and f"{MARK} {name.partition('.')[0]}" in run.stderr, (name, run.stderr[-500:])


def test_serving_imports_none_of_the_frameworks(built_zoo, tmp_path):
    repository = tmp_path / "models"
    repository.mkdir()
    for name in ("policy", "value"):  # the NeuralService's, found by name in the repository
        shutil.copy(built_zoo[name].onnx_path, repository / f"{name}.onnx")
    shutil.copy(built_zoo["policy"].onnx_path, repository / "tictac.onnx")  # one more, v2 only
    http_port, metrics_port = free_ports(2)
    args = ["serve", "--model-repository", str(repository), "--port", "0", "--http-port", str(http_port),
            "--metrics-port", str(metrics_port)]
    server = launch.ServerProcess([sys.executable, "-c", SERVE, *args])
    try:
        positions = realistic_positions(4, seed=3)
        with V2Client(server.target) as client:
            out = client.infer("tictac", {"input": positions})
        assert out["output"].shape == (4, 9)
        with NeuralClient(server.target) as neural:
            for position, expected in zip(positions, out["output"], strict=True):
                probabilities, best = neural.predict_policy(position)
                # policy.onnx and tictac.onnx are the same file: the same answer, by either API
                np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
                assert best == int(np.argmax(expected))
            assert 0.0 <= neural.predict_value(np.zeros(81, np.float32)) <= 1.0
            info = neural.model_info("policy")
            assert (info.input_size, info.output_size) == (81, 9)
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 81], "datatype": "FP32", "data": [0.0] * 81}]})
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v2/models/tictac/infer", body.encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["outputs"][0]["shape"] == [1, 9]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
            assert b"rps_infer_" in answer.read()
    finally:
        code = server.terminate()
    log = server.log()
    assert MARK not in log, log[log.index(MARK) - 200:][:3000]
    assert code == 0, log[-2000:]


def test_the_hook_sees_imports_a_caller_catches():
    # A blocked import that the code catches (an optional dependency) must still be reported.
    code = HOOK + "\ntry:\n    import tensorflow\nexcept ImportError:\n    pass\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and f"{MARK} tensorflow" in run.stderr
