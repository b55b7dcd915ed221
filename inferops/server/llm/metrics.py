"""Prometheus metrics of the LLM server, named after vLLM's (``vllm:*``) under ``inferops_``.

    inferops_time_to_first_token_seconds      histogram  arrival -> first token
    inferops_time_per_output_token_seconds    histogram  gap between consecutive tokens
    inferops_e2e_request_latency_seconds      histogram  arrival -> last token
    inferops_request_queue_time_seconds       histogram  arrival -> admitted to the batch
    inferops_prompt_tokens_total              counter
    inferops_generation_tokens_total          counter
    inferops_request_success_total            counter    by finished_reason
    inferops_num_requests_running             gauge
    inferops_num_requests_waiting             gauge
    inferops_kv_cache_usage_perc              gauge      reserved / --kv-cache-bytes, 0..1
    inferops_requests_total, inferops_request_duration_seconds   by HTTP code, as the v2 server

Seconds, per Prometheus conventions. Each server owns its registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

# vLLM's buckets, trimmed: TTFT and e2e reach tens of seconds under overload.
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
TPOT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
)
E2E_BUCKETS = (0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 120.0)


class LLMMetrics:
    def __init__(self, model: str):
        self.model = model
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        labels = ["model"]
        self.ttft = Histogram(
            "inferops_time_to_first_token_seconds",
            "Time from request arrival to its first output token",
            labels,
            buckets=TTFT_BUCKETS,
            registry=r,
        ).labels(model)
        self.tpot = Histogram(
            "inferops_time_per_output_token_seconds",
            "Time between consecutive output tokens of a request",
            labels,
            buckets=TPOT_BUCKETS,
            registry=r,
        ).labels(model)
        self.e2e = Histogram(
            "inferops_e2e_request_latency_seconds",
            "Time from request arrival to its last output token",
            labels,
            buckets=E2E_BUCKETS,
            registry=r,
        ).labels(model)
        self.queue_time = Histogram(
            "inferops_request_queue_time_seconds",
            "Time a request waited before joining the running batch",
            labels,
            buckets=TTFT_BUCKETS,
            registry=r,
        ).labels(model)
        self.prompt_tokens = Counter(
            "inferops_prompt_tokens", "Prefilled prompt tokens", labels, registry=r
        ).labels(model)
        self.generation_tokens = Counter(
            "inferops_generation_tokens", "Generated tokens", labels, registry=r
        ).labels(model)
        self.success = Counter(
            "inferops_request_success",
            "Finished generations by finish reason",
            ["model", "finished_reason"],
            registry=r,
        )
        self.running = Gauge(
            "inferops_num_requests_running", "Sequences in the running batch", labels, registry=r
        ).labels(model)
        self.waiting = Gauge(
            "inferops_num_requests_waiting", "Sequences waiting to be admitted", labels, registry=r
        ).labels(model)
        self.kv_usage = Gauge(
            "inferops_kv_cache_usage_perc",
            "Fraction of --kv-cache-bytes reserved by running sequences (0..1)",
            labels,
            registry=r,
        ).labels(model)
        self.requests = Counter(
            "inferops_requests", "Requests by HTTP status code", ["model", "code"], registry=r
        )
        self.request_duration = Histogram(
            "inferops_request_duration_seconds",
            "Request latency, from received to response complete",
            ["model", "code"],
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.model_loaded = Gauge(
            "inferops_model_loaded", "1 once the model is loaded and warmed up", labels, registry=r
        ).labels(model)
        self.model_loaded.set(0)

    def watch(self, engine) -> None:
        """Read the gauges from the engine at scrape time."""
        self.running.set_function(lambda: len(engine.running))
        self.waiting.set_function(lambda: len(engine.waiting))
        self.kv_usage.set_function(engine.kv_usage)

    # Engine callbacks (its worker thread).

    def observe_scheduled(self, seq, now: float) -> None:
        self.queue_time.observe(now - seq.arrival)
        self.prompt_tokens.inc(len(seq.prompt))

    def observe_token(self, seq, now: float) -> None:
        self.generation_tokens.inc()
        if seq.first_token_at is None:
            self.ttft.observe(now - seq.arrival)
        else:
            self.tpot.observe(now - seq.last_token_at)

    def observe_finished(self, seq, now: float) -> None:
        self.success.labels(self.model, seq.finish_reason or "unknown").inc()
        if seq.first_token_at is not None:
            self.e2e.observe(now - seq.arrival)

    def observe_request(self, code: int, seconds: float) -> None:
        self.requests.labels(self.model, str(code)).inc()
        self.request_duration.labels(self.model, str(code)).observe(seconds)
