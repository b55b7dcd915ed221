"""Prometheus metrics of the reference server (seconds, per Prometheus conventions).

Each server owns its registry, so several apps can live in one process (tests).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from inferops.server.stats import BatchTiming

# Latency buckets from 1 ms to 10 s: wide enough for mlp on a CPU and dense under overload.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """The server's metrics, all labelled with the served model's name."""

    def __init__(self, model: str):
        self.model = model
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes etc., for RSS checks
        self.request_duration = Histogram(
            "inferops_request_duration_seconds",
            "Inference request latency, from request received to response ready",
            ["model", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "inferops_requests",
            "Inference requests by HTTP status code",
            ["model", "code"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "inferops_queue_wait_seconds",
            "Time a request waited in the batching queue",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "inferops_batch_size",
            "Rows per model execution after dynamic batching",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.compute = Histogram(
            "inferops_inference_duration_seconds",
            "Time of one model execution (one batch)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "inferops_requests_in_flight",
            "Inference requests being handled now",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "inferops_queue_depth", "Requests waiting in the batching queue", ["model"], registry=r
        )
        self.body_bytes = Gauge(
            "inferops_request_body_bytes_in_flight",
            "Bytes of request bodies held now (read or being read), all requests together",
            ["model"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "inferops_model_loaded",
            "1 once the model is loaded and warmed up",
            ["model"],
            registry=r,
        )
        self.model_loaded.labels(model).set(0)
        self.in_flight.labels(model).set(0)

    def observe_batch(self, timing: BatchTiming) -> None:
        """Batcher callback, run on its worker thread after each model execution."""
        self.batch_size.labels(self.model).observe(timing.rows)
        self.compute.labels(self.model).observe(timing.input_s + timing.infer_s)
        wait = self.queue_wait.labels(self.model)
        for w in timing.waits:
            wait.observe(w)

    def observe_request(self, model: str, code: int, seconds: float) -> None:
        self.request_duration.labels(model, str(code)).observe(seconds)
        self.requests.labels(model, str(code)).inc()
