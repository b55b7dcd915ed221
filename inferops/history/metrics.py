"""The metrics a nightly run is judged on, read from ``summary.json``.

Each has a direction (is higher worse?) and a unit. A metric absent from a run
(``max_qps`` outside a sweep, TTFT outside an LLM run) is None and skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    higher_is_worse: bool

    def value(self, summary: dict) -> float | None:
        return _finite(_EXTRACT[self.name](summary))


def _dig(summary: dict, *keys: str) -> Any:
    node: Any = summary
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("max_qps", "max QPS at the SLO", "req/s", higher_is_worse=False),
        Metric("latency_p50_ms", "P50 latency", "ms", higher_is_worse=True),
        Metric("latency_p90_ms", "P90 latency", "ms", higher_is_worse=True),
        Metric("latency_p99_ms", "P99 latency", "ms", higher_is_worse=True),
        Metric("latency_p999_ms", "P99.9 latency", "ms", higher_is_worse=True),
        Metric("error_rate", "error rate", "", higher_is_worse=True),
        Metric("ttft_p99_ms", "P99 time to first token", "ms", higher_is_worse=True),
        Metric("tpot_p99_ms", "P99 time per output token", "ms", higher_is_worse=True),
    )
}

_EXTRACT = {
    "max_qps": lambda s: _dig(s, "slo", "max_qps"),
    "latency_p50_ms": lambda s: _dig(s, "latency_ms", "p50"),
    "latency_p90_ms": lambda s: _dig(s, "latency_ms", "p90"),
    "latency_p99_ms": lambda s: _dig(s, "latency_ms", "p99"),
    "latency_p999_ms": lambda s: _dig(s, "latency_ms", "p999"),
    "error_rate": lambda s: s.get("error_rate"),
    "ttft_p99_ms": lambda s: _dig(s, "ttft_ms", "p99"),
    "tpot_p99_ms": lambda s: _dig(s, "tpot_ms", "p99"),
}


def headline(summary: dict) -> list[str]:
    """The metrics that judge this kind of run.

    A sweep is judged on its capacity (the latency at the top step is at a
    rate that moves with it, so it is not comparable); a fixed-rate run on its
    latency distribution and error rate; an LLM run also on TTFT/TPOT.
    """
    if summary.get("mode") == "sweep":
        names = ["max_qps", "error_rate"]
    else:
        names = ["latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_p999_ms"]
        names.append("error_rate")
    names += [n for n in ("ttft_p99_ms", "tpot_p99_ms") if METRICS[n].value(summary) is not None]
    return names


def all_values(summary: dict) -> dict[str, float | None]:
    return {name: metric.value(summary) for name, metric in METRICS.items()}


def default_scenario(summary: dict) -> str:
    """A stable scenario key when none is given: model/protocol/mode and its load."""
    model = summary.get("model") or "model"
    protocol = summary.get("protocol") or "http"
    mode = summary.get("mode") or "run"
    if mode == "sweep":
        slo = _dig(summary, "slo", "p99_ms")
        return f"{model}/{protocol}/sweep@p99<={slo:g}ms" if slo else f"{model}/{protocol}/sweep"
    if mode == "open" and _finite(summary.get("offered_qps")) is not None:
        return f"{model}/{protocol}/open@{summary['offered_qps']:g}qps"
    return f"{model}/{protocol}/{mode}"
