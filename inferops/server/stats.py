"""Triton's statistics extension: per-model counts and cumulative durations in nanoseconds.

``GET /v2/models[/{name}[/versions/{v}]]/stats`` answers with the fields Triton's
protocol defines (docs/protocol/extension_statistics.md in triton-inference-server/server),
so perf_analyzer, Model Analyzer and ``tritonclient``'s ``get_inference_statistics``
read them unchanged:

* ``inference_count``: rows inferred by successful requests (a 4-row request counts 4);
* ``execution_count``: model executions (one per batch after dynamic batching);
* ``inference_stats.success`` / ``fail``: requests and their whole time in the server;
  ``fail`` counts every inference request for this model that got an error status
  (bad input, body limits, queue full, engine failure), as Triton counts rejections;
* ``queue``: time each executed request waited in the batching queue;
* ``compute_input`` / ``compute_infer`` / ``compute_output``: the batch's input
  concatenation, engine run and output split, charged to every request in that batch
  (as Triton does), plus each request's own response encoding in ``compute_output``;
* ``batch_stats``: per executed batch size, the same three compute durations.

Counters are updated from the batcher's worker thread and the event loop, under a lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
#: Present in Triton's schema; this server has no response cache, so they stay zero.
CACHE_PHASES = ("cache_hit", "cache_miss")


@dataclass(frozen=True)
class BatchTiming:
    """What the batcher measured for one model execution (seconds)."""

    rows: int
    waits: list[float]  # queue wait of each request in the batch
    input_s: float  # concatenating the requests' inputs
    infer_s: float  # the engine run
    output_s: float  # splitting the outputs back per request


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


class ModelStatistics:
    """Cumulative statistics of one model version since the server started."""

    def __init__(self, name: str, version: str):
        self.name, self.version = name, version
        self._lock = threading.Lock()
        self._phases = {phase: [0, 0] for phase in PHASES}
        self._batches: dict[int, dict[str, list[int]]] = {}
        self.inference_count = 0
        self.execution_count = 0
        self.last_inference_ms = 0

    def _add(self, table: dict, phase: str, count: int, ns: int) -> None:
        table[phase][0] += count
        table[phase][1] += ns

    def observe_batch(self, timing: BatchTiming) -> None:
        """One model execution (batcher worker thread)."""
        requests = len(timing.waits)
        compute = {
            "compute_input": _ns(timing.input_s),
            "compute_infer": _ns(timing.infer_s),
            "compute_output": _ns(timing.output_s),
        }
        with self._lock:
            self.execution_count += 1
            self._add(self._phases, "queue", requests, sum(_ns(w) for w in timing.waits))
            batch = self._batches.setdefault(timing.rows, {phase: [0, 0] for phase in compute})
            for phase, ns in compute.items():
                self._add(self._phases, phase, requests, ns * requests)
                self._add(batch, phase, 1, ns)

    def observe_request(self, ok: bool, rows: int, seconds: float, encode_s: float = 0.0) -> None:
        """One finished inference request (event loop)."""
        with self._lock:
            self.last_inference_ms = int(time.time() * 1000)
            if ok:
                self.inference_count += rows
                self._add(self._phases, "success", 1, _ns(seconds))
                self._phases["compute_output"][1] += _ns(encode_s)
            else:
                self._add(self._phases, "fail", 1, _ns(seconds))

    def to_json(self) -> dict:
        """This model's ``$model_stat`` object."""

        def stat(pair):
            return {"count": pair[0], "ns": pair[1]}

        with self._lock:
            inference_stats = {phase: stat(self._phases[phase]) for phase in PHASES}
            inference_stats.update({phase: stat([0, 0]) for phase in CACHE_PHASES})
            batch_stats = [
                {"batch_size": size, **{phase: stat(pair) for phase, pair in phases.items()}}
                for size, phases in sorted(self._batches.items())
            ]
            return {
                "name": self.name,
                "version": self.version,
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": inference_stats,
                "batch_stats": batch_stats,
            }
