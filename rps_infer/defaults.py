"""Defaults that more than one part of the package (and its command line) uses, each in one place."""

PARITY_BATCH_SIZES = (1, 3, 64)  # batch sizes parity is proven at: others than any export batch
GRPC_PORT = 50053  # what the game clients connect to
MAX_BATCH_SIZE = 512  # rows a request may carry and the batcher may form
BENCH_THREADS = 1  # threads per framework when timing: comparable, stable numbers on a shared machine
BENCH_BUDGET_S = 0.5  # timed seconds per case of an in-process sweep
PROCESS_SECONDS = 10.0  # measured seconds of a multi-process throughput run
TARGET_FPS = 250.0  # the cost report's around-the-clock load: ten 25 FPS streams
LOAD_WARMUP_S = 1.0  # seconds of closed-loop load per case not counted
SOAK_WARMUP_S = 3.0  # seconds of a soak not counted
SOAK_INTERVAL_S = 1.0  # seconds per reported soak window
HANDLER_THREADS = 2  # gRPC handler threads of a server process (the service and the sync echo: measured best)
