"""Prometheus metrics of the service (off unless ``--metrics-port`` is given).

One endpoint for the whole server: a single process serves its own registry; a pool of
``--workers`` writes its samples to files in a shared folder (prometheus_client's
multiprocess mode) and the supervisor serves their sum on the one port (:func:`serve_pool`).
Every sample has a ``worker`` label (the worker's slot, "0" for a single process).

Model labels are bounded: a name that is not a served model (a client's typo, or a scan of
random names) is counted under ``unknown``, so clients cannot grow the series without limit.
"""

from __future__ import annotations

import os

POOL_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it at import
UNKNOWN = "unknown"


class NullMetrics:
    """Records nothing: the default; with it the handlers skip metrics altogether."""

    enabled = False

    def track(self, models) -> None:
        """The model names that get a label of their own; any other is ``unknown``."""

    def in_flight(self, api: str, delta: int) -> None:
        """Requests being served now, by API."""

    def request(self, api: str, method: str, model: str, code: str, seconds: float) -> None:
        """One finished request: counted by API, method, model and status; latency observed."""

    def batch(self, model: str, rows: int) -> None:
        """One backend call of ``rows`` rows formed by the batcher."""


class PrometheusMetrics(NullMetrics):
    """Counters, histograms and gauges; exported on ``port`` (a single process), or, with
    ``port`` None, written for the supervisor of a pool to export (:func:`serve_pool`)."""

    enabled = True

    def __init__(self, port: int | None, host: str = "127.0.0.1", worker: int = 0) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        pooled = port is None
        self.registry = None if pooled else CollectorRegistry()
        self.worker = str(worker)
        self.known = {"-"}
        labels = ["api", "method", "model", "code", "worker"]
        self._requests = Counter("rps_infer_requests", "Requests by API, method, model and status code", labels,
                                 registry=self.registry)
        self._errors = Counter("rps_infer_errors", "Requests that ended with a non-OK status", labels,
                               registry=self.registry)
        self._latency = Histogram("rps_infer_request_seconds", "Server-side request latency",
                                  ["api", "method", "model", "worker"], registry=self.registry,
                                  buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0))
        self._batch = Histogram("rps_infer_batch_rows", "Rows per backend call formed by the batcher",
                                ["model", "worker"], registry=self.registry,
                                buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        # In a pool each worker's gauge is its own sample; the supervisor sums them.
        self._in_flight = Gauge("rps_infer_in_flight", "Requests being served", ["api", "worker"],
                                registry=self.registry, multiprocess_mode="livesum")
        self.server = None if pooled else start_http_server(port, addr=host, registry=self.registry)[0]

    def track(self, models) -> None:
        self.known = {"-", *models}

    def in_flight(self, api: str, delta: int) -> None:
        self._in_flight.labels(api, self.worker).inc(delta)

    def request(self, api: str, method: str, model: str, code: str, seconds: float) -> None:
        model = model if model in self.known else UNKNOWN
        self._requests.labels(api, method, model, code, self.worker).inc()
        if code not in ("OK", "200"):
            self._errors.labels(api, method, model, code, self.worker).inc()
        self._latency.labels(api, method, model, self.worker).observe(seconds)

    def batch(self, model: str, rows: int) -> None:
        self._batch.labels(model, self.worker).observe(rows)


def prepare_pool(folder: str) -> None:
    """Before the workers start: their samples go to files in ``folder``."""
    import sys

    os.environ[POOL_DIR_VARIABLE] = folder
    if "prometheus_client" in sys.modules:  # imported already: it chose in-memory values then
        from prometheus_client import values

        values.ValueClass = values.get_value_class()


def serve_pool(port: int, host: str) -> None:
    """Serve the sum of every worker's samples on ``port`` (the supervisor's one endpoint)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)


def worker_died(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay: they were counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
