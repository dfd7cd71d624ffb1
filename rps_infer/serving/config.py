"""What ``rps-infer serve`` takes, with its defaults (the command line reads them here).

Importing this module is cheap: it imports no gRPC, no framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import rps_infer.defaults as defaults
from rps_infer.serving.security import SecurityConfig


@dataclass(frozen=True)
class Batching:
    """A model's adaptive batching: requests merged up to ``max_batch_size`` rows, the leader
    waiting up to ``max_queue_delay_us`` for ``preferred_batch_sizes``' largest (Triton's
    dynamic batcher's settings). ``max_batch_size`` 0 is off."""

    max_batch_size: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0

    def describe(self) -> str:
        """``batching up to 64 rows, preferred [8, 32], waiting up to 100 us`` or ``batching off``."""
        if not self.max_batch_size:
            return "batching off"
        preferred = f", preferred {list(self.preferred_batch_sizes)}" if self.preferred_batch_sizes else ""
        return f"batching up to {self.max_batch_size} rows{preferred}, waiting up to {self.max_queue_delay_us} us"


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
    http_port: int | None = None  # the v2 REST API; None: off
    workers: int = 1
    # gRPC handler threads per worker: 2 served the most req/s at 8 and 32 clients (16 spent
    # ~130 us more CPU per request on handing the GIL around; benchmarks/README.md).
    threads: int = defaults.HANDLER_THREADS
    # iomgr: 7-156 us less server CPU per call than grpcio's default EventEngine I/O here
    # (rps_infer/serving/poller.py; benchmarks/README.md, "The gRPC I/O path").
    grpc_poller: str = "iomgr"
    intra_op_threads: int = 1  # per model; more helps large models, hurts tiny ones
    max_batch_size: int = defaults.MAX_BATCH_SIZE
    batch_timeout_us: int = 0
    # Off by default: merging concurrent requests paid little or lost for the MLPs (0.89-1.12x
    # the req/s at 8 and 32 clients, ModelInfer losing; benchmarks/README.md).
    batching: bool = False
    max_message_mb: int = 64  # gRPC messages both ways, HTTP request bodies
    # HTTP: headers must arrive within this from a connection's start or a request's first
    # byte, each piece of a body within body_timeout of the last; idle connections close.
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 30.0
    # Above the 60 s idle timeouts of common load balancers, so they close first (no race).
    http_keepalive_timeout_s: float = 75.0
    model_name: str | None = None  # serve a repository's one model under this name (KServe's)
    allow_nonfinite: bool = False
    allow_any_head: bool = False  # serve a policy / value whose outputs are not probabilities / in [0, 1]
    metrics_port: int | None = None
    grace_s: float = 10.0
    security: SecurityConfig = field(default_factory=SecurityConfig)
