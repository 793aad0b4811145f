"""Prometheus metrics of one server (its own registry, so two servers in one process do not mix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    """Requests by model, protocol and status code; latency and batch-size histograms; queue depth."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kcli_requests", "Predict/infer requests answered", ["model", "protocol", "code"],
                                registry=self.registry)
        self.errors = Counter("kcli_request_errors", "Predict/infer requests answered with a 4xx or 5xx code",
                              ["model", "protocol", "code"], registry=self.registry)
        self.disconnects = Counter("kcli_client_disconnects", "Predict/infer requests whose client left before "
                                   "sending its whole body (not answered, not errors)", ["model", "protocol"],
                                   registry=self.registry)
        self.latency = Histogram("kcli_request_seconds", "Time from request to answer", ["model", "protocol"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("kcli_batch_rows", "Rows per model call (adaptive batching)", ["model"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_rows = Gauge("kcli_queue_rows", "Rows waiting or running", ["model"], registry=self.registry)

    def answered(self, model: str, protocol: str, code: int, seconds: float) -> None:
        """Count one predict/infer request."""
        self.requests.labels(model, protocol, str(code)).inc()
        if code >= 400:
            self.errors.labels(model, protocol, str(code)).inc()
        self.latency.labels(model, protocol).observe(seconds)

    def disconnected(self, model: str, protocol: str) -> None:
        """Count one request whose client went away before its body was read."""
        self.disconnects.labels(model, protocol).inc()

    def batched(self, model: str, rows: int, queued: int) -> None:
        """Record one model call's rows and what is still queued."""
        self.batch_rows.labels(model).observe(rows)
        self.queue_rows.labels(model).set(queued)

    def text(self) -> bytes:
        """The exposition text for GET /metrics."""
        return generate_latest(self.registry)
