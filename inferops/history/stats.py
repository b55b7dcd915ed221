"""Distribution statistics for comparing two runs.

Two tests, both nonparametric:

* **Bootstrap over the HDR histograms.** Resampling each run's requests with
  replacement (``reps`` times) and reading the quantile off each resample
  gives the sampling distribution of the candidate/baseline quantile ratio:
  its percentile confidence interval, and a two-sided bootstrap p-value (how
  often the resampled ratio lands on the other side of 1). A resample's
  quantile is drawn directly as an order statistic (see
  :func:`_bootstrap_quantile`), so a 10M-request run costs what a small one does.
* **Mann-Whitney U on per-window samples.** Requests inside one run are not
  independent (a GC pause slows a burst of them), so the per-request bootstrap
  is optimistic; the per-second P50/P99 of ``timeseries.csv`` are closer to
  independent draws and keep the run's time variation. MWU on those is the
  test that decides when both runs have enough windows.

Effects are relative: ``candidate / baseline - 1`` (``+0.10`` = 10 % higher).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: named quantiles compared on the whole latency distribution
QUANTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
#: fewest non-empty windows per run for the per-window test
MIN_WINDOWS = 8


@dataclass
class HistogramCounts:
    """The non-empty buckets of an HDR histogram: values (µs) and counts."""

    values: np.ndarray  # float64, ascending, highest-equivalent value of each bucket
    counts: np.ndarray  # int64
    total: int

    @classmethod
    def from_hdr(cls, hist) -> HistogramCounts:
        counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len].astype(np.int64)
        nonzero = np.flatnonzero(counts)
        values = np.array(
            [hist.get_highest_equivalent_value(hist.get_value_from_index(int(i))) for i in nonzero],
            dtype=np.float64,
        )
        return cls(values=values, counts=counts[nonzero], total=int(counts.sum()))

    def quantile(self, percentile: float) -> float:
        return float(_quantiles(self.values, self.counts[None, :], percentile)[0])


def _quantiles(values: np.ndarray, counts: np.ndarray, percentile: float) -> np.ndarray:
    """HDR's get_value_at_percentile on each row of ``counts`` (shape rows × buckets)."""
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1]
    target = np.maximum(1, np.ceil(percentile / 100.0 * total - 1e-9)).astype(np.int64)
    index = np.sum(cum < target[:, None], axis=1)  # first bucket reaching the target
    return values[np.minimum(index, len(values) - 1)]


def _bootstrap_quantile(
    h: HistogramCounts, percentile: float, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """``reps`` draws of the quantile of a bootstrap resample of ``h``.

    The quantile of N draws with replacement from the histogram is its r-th
    order statistic (r = ceil(q·N)), distributed as F⁻¹(U₍ᵣ₎) with
    U₍ᵣ₎ ~ Beta(r, N − r + 1) and F⁻¹ the histogram's own quantile function.
    Drawing U₍ᵣ₎ directly is the exact multinomial bootstrap of that quantile
    at O(log buckets) per resample, whatever N is.
    """
    n = h.total
    r = max(1, math.ceil(percentile / 100.0 * n - 1e-9))
    u = rng.beta(r, n - r + 1, size=reps)
    cum = np.cumsum(h.counts) / n
    index = np.searchsorted(cum, u, side="left")
    return h.values[np.minimum(index, len(h.values) - 1)]


@dataclass
class RatioEstimate:
    """candidate/baseline ratio of one statistic with its confidence interval and p-value."""

    effect: float  # relative: ratio - 1
    ci_low: float
    ci_high: float
    p_value: float | None
    test: str


def bootstrap_quantile_ratios(
    baseline: HistogramCounts,
    candidate: HistogramCounts,
    *,
    percentiles: dict[str, float] = QUANTILES,
    confidence: float = 0.99,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, RatioEstimate]:
    """Bootstrap the quantile ratios candidate/baseline at each named percentile."""
    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence) / 2.0
    out = {}
    for name, pct in percentiles.items():
        point = candidate.quantile(pct) / baseline.quantile(pct)
        ratios = _bootstrap_quantile(candidate, pct, reps, rng) / _bootstrap_quantile(
            baseline, pct, reps, rng
        )
        below = int(np.sum(ratios <= 1.0))
        above = int(np.sum(ratios >= 1.0))
        p = min(1.0, 2.0 * (min(below, above) + 1) / (reps + 1))
        low, high = np.quantile(ratios, [tail, 1.0 - tail])
        out[name] = RatioEstimate(
            effect=point - 1.0,
            ci_low=float(low) - 1.0,
            ci_high=float(high) - 1.0,
            p_value=p,
            test=f"bootstrap over HDR histograms ({reps} resamples)",
        )
    return out


def mann_whitney_windows(
    baseline: list[float | None], candidate: list[float | None]
) -> tuple[float, int, int] | None:
    """Two-sided Mann-Whitney U p-value on per-window samples; None with too few windows."""
    from scipy.stats import mannwhitneyu

    a = [v for v in baseline if v is not None and math.isfinite(v)]
    b = [v for v in candidate if v is not None and math.isfinite(v)]
    if len(a) < MIN_WINDOWS or len(b) < MIN_WINDOWS:
        return None
    if len(set(a) | set(b)) == 1:
        return 1.0, len(a), len(b)  # all equal: no evidence of a shift
    result = mannwhitneyu(b, a, alternative="two-sided", method="auto")
    return float(result.pvalue), len(a), len(b)


def error_rate_test(
    base_failures: int, base_requests: int, cand_failures: int, cand_requests: int
) -> float:
    """Two-sided Fisher exact p-value that two runs have the same error rate."""
    from scipy.stats import fisher_exact

    if base_requests <= 0 or cand_requests <= 0:
        return 1.0
    table = [
        [cand_failures, cand_requests - cand_failures],
        [base_failures, base_requests - base_failures],
    ]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def prediction_p_value(history: list[float], value: float) -> float | None:
    """Two-sided p-value that ``value`` comes from the runs in ``history`` (t prediction interval).

    None with fewer than 3 history points (no usable spread).
    """
    from scipy.stats import t as student_t

    xs = np.asarray([h for h in history if h is not None and math.isfinite(h)], dtype=float)
    if len(xs) < 3:
        return None
    sd = float(np.std(xs, ddof=1))
    if sd == 0.0:
        return 0.0 if value != xs[0] else 1.0
    t = (value - float(xs.mean())) / (sd * math.sqrt(1.0 + 1.0 / len(xs)))
    return float(2.0 * student_t.sf(abs(t), df=len(xs) - 1))
