"""FAKE nightly histories with known truth, for the detection tests and the scale benchmark.

Each synthetic run is a fixed-rate run of ``windows`` one-second windows of
``rate`` requests. Latencies are log-normal around ``base_ms × scale``, with
two layers of noise real hardware has: a per-run factor (``run_noise``: the
machine is a bit faster or slower tonight) and a per-window factor
(``window_noise``: a noisy neighbour for a second). They are recorded into the
recorder's own HdrHistogram (same range and precision, microseconds) and
encoded as ``latency.hdr`` is, so the history package reads exactly what it
reads from ``inferops bench``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from inferops.history.runsource import RunData, decode_hdr, new_histogram, write_run


def _record(values_us: np.ndarray):
    hist = new_histogram()
    # 3 significant digits is the histogram's own resolution: bin first, then one
    # record_value(value, count) per distinct value instead of one call per request
    rounded = np.maximum(1, np.rint(values_us)).astype(np.int64)
    uniq, counts = np.unique(rounded, return_counts=True)
    for value, count in zip(uniq.tolist(), counts.tolist(), strict=True):
        hist.record_value(value, count)
    return hist


def synthetic_run(
    *,
    seed: int,
    scale: float = 1.0,
    base_ms: float = 5.0,
    shape: float = 0.35,
    run_noise: float = 0.01,
    window_noise: float = 0.03,
    windows: int = 30,
    rate: int = 200,
    slo_p99_ms: float = 50.0,
    night: int = 0,
    git_sha: str | None = None,
    packages: dict | None = None,
    model: str = "synthetic",
    profile: str = "synthetic",
) -> RunData:
    """One fixed-rate run (in memory) whose true latency scale is ``scale``."""
    rng = np.random.default_rng(seed)
    run_factor = float(np.exp(rng.normal(0.0, run_noise)))
    window_factor = np.exp(rng.normal(0.0, window_noise, windows))
    mu = np.log(base_ms * 1000.0 * scale * run_factor * window_factor)  # µs
    samples = rng.lognormal(mean=np.repeat(mu, rate), sigma=shape)
    per_window = samples.reshape(windows, rate)
    hist = _record(samples)
    encoded = hist.encode()
    encoded = encoded.decode("ascii") if isinstance(encoded, bytes) else encoded
    decoded = decode_hdr(encoded)

    def q(p: float) -> float:
        return decoded.get_value_at_percentile(p) / 1000.0

    started = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc) + dt.timedelta(days=night)
    requests = windows * rate
    summary = {
        "schema": 1,
        "partial": False,
        "target": "http://synthetic.invalid",
        "protocol": "v2",
        "model": model,
        "mode": "open",
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": float(windows),
        "warmup_s": 0.0,
        "requests": requests,
        "failures": 0,
        "error_rate": 0.0,
        "offered_qps": float(rate),
        "achieved_qps": float(rate),
        "latency_ms": {
            "p50": q(50),
            "p90": q(90),
            "p99": q(99),
            "p999": q(99.9),
            "max": decoded.get_max_value() / 1000.0,
        },
        "valid": True,
        "validity": [],
        "early_stopping": {"bound_ms": slo_p99_ms},
        "thresholds": [],
        "passed": True,
    }
    manifest = {
        "schema": 1,
        "inferops_version": "0.1.0",
        "git_sha": git_sha,
        "command": ["synthetic"],
        "python": "3.11",
        "packages": packages or {"onnxruntime": "1.17.0"},
        "host": {"hostname": "synthetic", "cpu_model": "Synthetic CPU", "cpu_count": 2, "gpus": []},
        "thresholds": {"p99_latency_ms": slo_p99_ms},
        "profile": profile,
    }
    windows_out = {
        "p50_ms": np.round(np.percentile(per_window, 50, axis=1) / 1000.0, 3).tolist(),
        "p99_ms": np.round(np.percentile(per_window, 99, axis=1) / 1000.0, 3).tolist(),
        "achieved_qps": [float(rate)] * windows,
        "errors": [0.0] * windows,
    }
    return RunData(
        summary=summary,
        manifest=manifest,
        histograms={"latency": encoded},
        windows=windows_out,
        source=f"synthetic night {night} seed {seed}",
    )


def write_synthetic_run(path: str | Path, **kwargs) -> Path:
    """:func:`synthetic_run` written as a real run folder (atomic files, summary last)."""
    run = synthetic_run(**kwargs)
    rows = [
        {"t_s": float(i), "p50_ms": p50, "p99_ms": p99, "achieved_qps": qps, "errors": err}
        for i, (p50, p99, qps, err) in enumerate(
            zip(
                run.windows["p50_ms"],
                run.windows["p99_ms"],
                run.windows["achieved_qps"],
                run.windows["errors"],
                strict=True,
            )
        )
    ]
    return write_run(
        path,
        summary=run.summary,
        manifest=run.manifest,
        histograms={"latency": decode_hdr(run.histograms["latency"])},
        timeseries=rows,
    )


def history(
    nights: int,
    *,
    seed: int,
    scale_at=lambda night: 1.0,
    **kwargs,
) -> list[RunData]:
    """``nights`` runs, night ``n`` at true scale ``scale_at(n)``."""
    return [
        synthetic_run(seed=seed * 100_003 + n, night=n, scale=scale_at(n), **kwargs)
        for n in range(nights)
    ]


def judge_night(
    seed: int, tonight_scale: float, *, nights: int = 20, run_noise: float = 0.01
) -> dict:
    """Run the nightly detector on one synthetic history; which stages flagged a regression.

    ``nights`` earlier runs at scale 1.0 (the first is the baseline), then
    tonight's run and its rerun at ``tonight_scale``. Also reports what a naive
    single-run rule ("P99 more than 10 % / 5 % above the baseline") would say.
    ``confirmed_suspects`` holds the confirmed suspects (:class:`~inferops.history.detect.Suspect`).
    """
    from inferops.history.compare import compare
    from inferops.history.detect import confirm, suspects
    from inferops.history.metrics import METRICS

    runs = history(
        nights + 2,
        seed=seed,
        windows=20,
        rate=100,
        run_noise=run_noise,
        scale_at=lambda n: tonight_scale if n >= nights else 1.0,
    )
    earlier, candidate, rerun = runs[:nights], runs[nights], runs[nights + 1]
    baseline = earlier[0]
    values = {m: [METRICS[m].value(r.summary) for r in earlier] for m in METRICS}
    comparison = compare(baseline, candidate)
    suspected = [s for s in suspects(comparison, values) if s.kind == "regression"]
    confirmed = (
        confirm(suspected, compare(baseline, rerun), values, baseline_index=0) if suspected else []
    )
    p99 = METRICS["latency_p99_ms"]
    ratio = p99.value(candidate.summary) / p99.value(baseline.summary)
    return {
        "flagged": bool(comparison.regressions),
        "suspected": bool(suspected),
        "confirmed": bool(confirmed),
        "naive_p99_10pct": ratio > 1.10,
        "naive_p99_5pct": ratio > 1.05,
        "confirmed_suspects": confirmed,
    }
