"""What ``rps-infer serve`` takes, with its defaults (the command line reads them here).

Importing this module is cheap: it imports no gRPC, no framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import rps_infer.defaults as defaults
from rps_infer.serving.security import SecurityConfig


@dataclass
class ServerConfig:
    """Everything ``rps-infer serve`` takes."""

    policy: Path | None = None
    value: Path | None = None
    models: dict[str, Path] = field(default_factory=dict)
    model_repository: Path | None = None
    backend: str = "onnxrt"
    device: str = "cpu"
    precision: str = "fp32"
    host: str = "127.0.0.1"
    port: int = defaults.GRPC_PORT
    workers: int = 1
    threads: int = 16  # gRPC handler threads per worker
    intra_op_threads: int = 1  # per model; more helps large models, hurts tiny ones
    max_batch_size: int = defaults.MAX_BATCH_SIZE
    batch_timeout_us: int = 0
    batching: bool = True
    max_message_mb: int = 64
    allow_nonfinite: bool = False
    allow_any_head: bool = False  # serve a policy / value whose outputs are not probabilities / in [0, 1]
    metrics_port: int | None = None
    grace_s: float = 10.0
    security: SecurityConfig = field(default_factory=SecurityConfig)
