"""Synthetic run folders, for the report's tests and the scale benchmark.

These are FAKE measurements with known shapes, written in the documented
format (``docs/run-format.md``) so the report can be checked against numbers
computed from the inputs. Real runs come from ``inferops bench``.

The latency model: one node serves with exponentially distributed latency
whose mean grows as ``base_ms / (1 - offered / capacity)`` (an M/M/1-like
curve), so the P99 at every sweep step is known in closed form.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

#: quantile grid used to fill histograms: fine enough for p99.9 to be exact
_GRID = 20_000


def p99_at(offered: float, *, base_ms: float, capacity_qps: float) -> float:
    """Closed-form P99 (ms) of the synthetic node at ``offered`` req/s."""
    mean = base_ms / max(1e-9, 1 - offered / capacity_qps)
    return -math.log(0.01) * mean


def exp_quantile(q: float, mean_ms: float) -> float:
    return -math.log(1 - q) * mean_ms


def _hist(mean_ms: float, count: int):
    """An HdrHistogram (microseconds) of ``count`` exponential(mean_ms) samples."""
    from hdrh.histogram import HdrHistogram

    hist = HdrHistogram(1, 3_600_000_000, 3)
    grid = max(1, min(_GRID, count))
    u = (np.arange(grid) + 0.5) / grid
    values = np.maximum(1, np.rint(-np.log1p(-u) * mean_ms * 1000)).astype(np.int64)
    # spread count over the quantile grid as evenly as integers allow
    counts = np.diff(np.floor(np.linspace(0, count, grid + 1))).astype(np.int64)
    for value, n in zip(values, counts, strict=True):
        if n:
            hist.record_value(int(value), int(n))
    return hist


def _percentiles(hist) -> dict[str, float]:
    return {
        "p50": hist.get_value_at_percentile(50) / 1000,
        "p90": hist.get_value_at_percentile(90) / 1000,
        "p99": hist.get_value_at_percentile(99) / 1000,
        "p999": hist.get_value_at_percentile(99.9) / 1000,
        "max": hist.get_max_value() / 1000,
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _timeseries(
    path: Path,
    *,
    rows: int,
    offered: float,
    achieved: float,
    p50: float,
    p99: float,
    capacity_qps: float,
    gpu: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=float)
    noise = rng.normal(1.0, 0.03, rows)
    cols = {
        "t_s": t,
        "offered_qps": np.full(rows, offered),
        "achieved_qps": achieved * noise,
        "p50_ms": p50 * rng.normal(1.0, 0.05, rows),
        "p99_ms": p99 * rng.normal(1.0, 0.08, rows),
        "errors": np.zeros(rows),
        "cpu_pct": np.clip(90 * achieved / capacity_qps * noise, 0, 100),
        "mem_pct": np.full(rows, 35.0) + rng.normal(0, 0.5, rows),
        "net_rx_bytes_s": achieved * 4000 * noise,
        "net_tx_bytes_s": achieved * 200 * noise,
        "disk_read_bytes_s": np.zeros(rows),
        "disk_write_bytes_s": np.zeros(rows),
    }
    gpu_cols = {
        "gpu_util_pct": np.clip(80 * achieved / capacity_qps * noise, 0, 100),
        "gpu_mem_pct": np.full(rows, 42.0),
        "gpu_power_w": 70 + 150 * achieved / capacity_qps * noise,
        "gpu_temp_c": np.full(rows, 61.0),
    }
    for name, values in gpu_cols.items():
        cols[name] = values if gpu else None
    with path.open("w", encoding="utf-8") as fh:
        fh.write(",".join(cols) + "\n")
        columns = [
            [f"{v:.3f}" for v in values] if values is not None else [""] * rows
            for values in cols.values()
        ]
        fh.writelines(",".join(row) + "\n" for row in zip(*columns, strict=True))


def write_run(
    out: str | Path,
    *,
    profile: str = "synthetic-cpu",
    offered_qps: float = 100.0,
    capacity_qps: float = 200.0,
    base_ms: float = 4.0,
    duration_s: float = 30.0,
    requests: int | None = None,
    rows: int | None = None,
    gpu: bool = False,
    valid: bool = True,
    validity: list[str] | None = None,
    late_sends_pct: float = 0.1,
    generator_cpu_pct_max: float = 30.0,
    p99_limit_ms: float = 500.0,
    seed: int = 0,
) -> Path:
    """Write one fixed-rate run folder with known distributions; return its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    achieved = min(offered_qps, capacity_qps * 0.98)
    requests = int(requests if requests is not None else achieved * duration_s)
    rows = int(rows if rows is not None else duration_s)
    mean = base_ms / max(0.02, 1 - offered_qps / capacity_qps)
    service_mean = base_ms
    lat, svc = _hist(mean, requests), _hist(service_mean, requests)
    (out / "latency.hdr").write_bytes(lat.encode() + b"\n")
    (out / "service_time.hdr").write_bytes(svc.encode() + b"\n")
    lat_p, svc_p = _percentiles(lat), _percentiles(svc)
    _timeseries(
        out / "timeseries.csv",
        rows=rows,
        offered=offered_qps,
        achieved=achieved,
        p50=lat_p["p50"],
        p99=lat_p["p99"],
        capacity_qps=capacity_qps,
        gpu=gpu,
        seed=seed,
    )
    cpu_max = min(100.0, 90 * achieved / capacity_qps * 1.1)
    thresholds = [
        {
            "name": "p99_latency_ms",
            "limit": p99_limit_ms,
            "value": lat_p["p99"],
            "ok": lat_p["p99"] <= p99_limit_ms,
        },
        {"name": "max_cpu_percent", "limit": 85.0, "value": cpu_max, "ok": cpu_max <= 85},
    ]
    reasons = list(validity or ([] if valid else ["synthetic: marked invalid"]))
    _write_json(
        out / "manifest.json",
        {
            "schema": 1,
            "inferops_version": "0.1.0",
            "git_sha": None,
            "command": ["synthetic", "write_run", profile],
            "python": "3.11",
            "packages": {"synthetic": "1"},
            "host": {
                "hostname": "synthetic-host",
                "os": "synthetic",
                "kernel": "0",
                "cpu_model": "Synthetic CPU",
                "cpu_count": 2,
                "memory_bytes": 8 << 30,
                "gpus": [{"name": "Synthetic GPU"}] if gpu else [],
            },
            "thresholds": {"p99_latency_ms": p99_limit_ms, "max_cpu_percent": 85},
            "profile": profile,
        },
    )
    _write_json(
        out / "summary.json",
        {
            "schema": 1,
            "partial": False,
            "target": "http://127.0.0.1:1",
            "protocol": "v2",
            "model": "synthetic",
            "mode": "open",
            "started_at": "2026-11-23T09:30:00Z",
            "duration_s": duration_s,
            "warmup_s": 0.0,
            "requests": requests,
            "failures": 0,
            "error_rate": 0.0,
            "offered_qps": offered_qps,
            "achieved_qps": achieved,
            "latency_ms": lat_p,
            "service_time_ms": svc_p,
            "late_sends_pct": late_sends_pct,
            "generator_cpu_pct_max": generator_cpu_pct_max,
            "host": {
                "cpu_pct_max": cpu_max,
                "memory_pct_max": 36.0,
                "gpu_util_pct_max": 80.0 if gpu else None,
                "gpu_mem_pct_max": 42.0 if gpu else None,
                "gpu_power_w_max": 220.0 if gpu else None,
            },
            "valid": bool(valid and not reasons),
            "validity": reasons,
            "thresholds": thresholds,
            "passed": bool(valid and not reasons and all(t["ok"] for t in thresholds)),
        },
    )
    return out


def write_sweep(
    out: str | Path,
    *,
    profile: str = "synthetic-cpu",
    slo_p99_ms: float = 50.0,
    capacity_qps: float = 200.0,
    base_ms: float = 4.0,
    steps_qps: list[float] | None = None,
    step_duration_s: float = 10.0,
    gpu: bool = False,
    valid: bool = True,
    invalid_steps: tuple[int, ...] = (),
    seed: int = 0,
) -> Path:
    """Write a sweep folder (``steps/NN`` runs + top-level summary with ``slo``)."""
    out = Path(out)
    steps_qps = list(steps_qps or [capacity_qps * f for f in (0.2, 0.4, 0.6, 0.8, 0.9, 0.95)])
    steps, step_dirs = [], []
    for i, q in enumerate(steps_qps):
        rel = f"steps/{i:02d}"
        bad = i in invalid_steps
        write_run(
            out / rel,
            profile=profile,
            offered_qps=q,
            capacity_qps=capacity_qps,
            base_ms=base_ms,
            duration_s=step_duration_s,
            gpu=gpu,
            valid=not bad,
            p99_limit_ms=slo_p99_ms,
            seed=seed + i,
        )
        step = json.loads((out / rel / "summary.json").read_text())
        p99 = step["latency_ms"]["p99"]
        steps.append(
            {
                "offered_qps": q,
                "achieved_qps": step["achieved_qps"],
                "p99_ms": p99,
                "valid": not bad,
                "ok": (not bad) and p99 <= slo_p99_ms,
                "dir": rel,
            }
        )
        step_dirs.append(out / rel)
    ok = [s["achieved_qps"] for s in steps if s["ok"]]
    # the top level describes the highest step that met the SLO (its files copied up)
    best = max((i for i, s in enumerate(steps) if s["ok"]), default=len(steps) - 1)
    top = json.loads((step_dirs[best] / "summary.json").read_text())
    for name in ("latency.hdr", "service_time.hdr", "timeseries.csv", "manifest.json"):
        (out / name).write_bytes((step_dirs[best] / name).read_bytes())
    top["mode"] = "sweep"
    top["slo"] = {"p99_ms": slo_p99_ms, "max_qps": max(ok) if ok else None, "steps": steps}
    if not valid:
        top["valid"], top["passed"] = False, False
        top["validity"] = ["synthetic: load generator was the bottleneck (late sends 4.2 %)"]
        top["late_sends_pct"] = 4.2
    _write_json(out / "summary.json", top)
    return out


def llm_p99s(offered: float, *, capacity_qps: float, ttft_ms: float, tpot_ms: float):
    """Closed-form (P99 TTFT, P99 TPOT) in ms of the synthetic LLM node at ``offered``."""
    load = min(offered / capacity_qps, 0.99)
    return ttft_ms / (1 - load), tpot_ms * (1 + 3 * load)


def write_llm_sweep(
    out: str | Path,
    *,
    profile: str = "synthetic-llm",
    slo_ttft_ms: float = 500.0,
    slo_tpot_ms: float = 50.0,
    ttft_ms: float = 100.0,
    tpot_ms: float = 10.0,
    tokens_per_request: int = 128,
    capacity_qps: float = 20.0,
    steps_qps: list[float] | None = None,
    invalid_steps: tuple[int, ...] = (),
    seed: int = 0,
) -> Path:
    """A FAKE ``--protocol openai`` sweep: :func:`write_sweep`'s folders plus the ``llm``
    object and the TTFT/TPOT knee, with P99s from :func:`llm_p99s` and exactly
    ``tokens_per_request`` output tokens a request."""
    out = write_sweep(
        out,
        profile=profile,
        slo_p99_ms=1e9,  # the E2E curve is not what an LLM sweep bounds
        capacity_qps=capacity_qps,
        steps_qps=steps_qps,
        invalid_steps=invalid_steps,
        seed=seed,
    )
    top = json.loads((out / "summary.json").read_text())
    steps = top["slo"]["steps"]
    for i, step in enumerate(steps):
        ttft, tpot = llm_p99s(
            step["offered_qps"], capacity_qps=capacity_qps, ttft_ms=ttft_ms, tpot_ms=tpot_ms
        )
        tokens_s = tokens_per_request * step["achieved_qps"]
        step.update(p99_ttft_ms=ttft, p99_tpot_ms=tpot, output_tokens_per_s=tokens_s)
        step["ok"] = i not in invalid_steps and ttft <= slo_ttft_ms and tpot <= slo_tpot_ms
        step_summary = json.loads((out / step["dir"] / "summary.json").read_text())
        step_summary["protocol"] = "openai"
        step_summary["llm"] = _llm_block(step_summary, ttft, tpot, tokens_per_request)
        _write_json(out / step["dir"] / "summary.json", step_summary)
    ok = [s for s in steps if s["ok"]]
    best = max(ok, key=lambda s: s["achieved_qps"]) if ok else steps[-1]
    ttft, tpot = best["p99_ttft_ms"], best["p99_tpot_ms"]
    top["protocol"] = "openai"
    top["llm"] = _llm_block(top, ttft, tpot, tokens_per_request)
    top["slo"].update(
        p99_ms=None,
        ttft_ms=slo_ttft_ms,
        tpot_ms=slo_tpot_ms,
        max_qps=best["offered_qps"] if ok else None,
    )
    _write_json(out / "summary.json", top)
    return out


def _llm_block(summary: dict, p99_ttft: float, p99_tpot: float, tokens: int) -> dict:
    achieved = summary["achieved_qps"]
    return {
        "ttft_ms": {"p50": p99_ttft / 3, "p90": p99_ttft / 1.5, "p99": p99_ttft},
        "itl_ms": {"p50": p99_tpot / 2, "p90": p99_tpot / 1.2, "p99": p99_tpot},
        "tpot_ms": {"p50": p99_tpot / 2, "p90": p99_tpot / 1.2, "p99": p99_tpot},
        "input_tokens_total": 64 * summary["requests"],
        "output_tokens_total": tokens * summary["requests"],
        "output_tokens_per_s": tokens * achieved,
        "goodput_qps": achieved,
        "token_count_source": "usage",
    }
