"""Prometheus metrics of the service (off unless ``--metrics-port`` is given)."""

from __future__ import annotations


class NullMetrics:
    """Records nothing: the default; with it the handlers skip metrics altogether."""

    enabled = False

    def in_flight(self, api: str, delta: int) -> None:
        """Requests being served now, by API."""

    def request(self, api: str, method: str, model: str, code: str, seconds: float) -> None:
        """One finished request: counted by API, method, model and status; latency observed."""

    def batch(self, model: str, rows: int) -> None:
        """One backend call of ``rows`` rows formed by the batcher."""


class PrometheusMetrics(NullMetrics):
    """Counters, histograms and gauges exported on an HTTP port."""

    enabled = True

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        self.registry = CollectorRegistry()
        self._requests = Counter("rps_infer_requests", "Requests by API, method, model and status code",
                                 ["api", "method", "model", "code"], registry=self.registry)
        self._errors = Counter("rps_infer_errors", "Requests that ended with a non-OK status",
                               ["api", "method", "model", "code"], registry=self.registry)
        self._latency = Histogram("rps_infer_request_seconds", "Server-side request latency",
                                  ["api", "method", "model"], registry=self.registry,
                                  buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0))
        self._batch = Histogram("rps_infer_batch_rows", "Rows per backend call formed by the batcher",
                                ["model"], registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self._in_flight = Gauge("rps_infer_in_flight", "Requests being served", ["api"], registry=self.registry)
        self.server, _ = start_http_server(port, addr=host, registry=self.registry)

    def in_flight(self, api: str, delta: int) -> None:
        self._in_flight.labels(api).inc(delta)

    def request(self, api: str, method: str, model: str, code: str, seconds: float) -> None:
        self._requests.labels(api, method, model, code).inc()
        if code != "OK":
            self._errors.labels(api, method, model, code).inc()
        self._latency.labels(api, method, model).observe(seconds)

    def batch(self, model: str, rows: int) -> None:
        self._batch.labels(model).observe(rows)
