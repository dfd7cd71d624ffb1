"""Regenerate the committed Python modules from the .proto files here.

    python -m rps_infer.serving.protos.generate [OUT_DIR]

Generated code is committed (so a plain install needs no protoc); a test
regenerates into a temp dir and fails when the committed modules are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
REPO_ROOT = PROTO_DIR.parent.parent.parent
PROTOS = ("neural.proto", "predict_v2.proto")


def generate(out_root: Path) -> list[Path]:
    """Run protoc (grpcio-tools) so modules land in ``out_root/rps_infer/serving/protos``."""
    from grpc_tools import protoc

    out_root.mkdir(parents=True, exist_ok=True)
    rel = [str((PROTO_DIR / p).relative_to(REPO_ROOT)) for p in PROTOS]
    # Paths relative to the repo root make the generated imports absolute
    # (from rps_infer.serving.protos import neural_pb2).
    args = ["protoc", f"-I{REPO_ROOT}", f"--python_out={out_root}", f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}", *rel]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    out = out_root / PROTO_DIR.relative_to(REPO_ROOT)
    return sorted(p for p in out.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT
    for path in generate(target):
        print(path)
