"""Change points in a nightly series: E-divisive means with a t-test, split then merge.

This is the algorithm of Apache Otava (formerly Hunter; Fleming et al., "Hunter:
Using Change Point Detection to Hunt for Performance Regressions", ICPE 2023,
https://doi.org/10.1145/3578244.3583719), implemented here rather than imported
because the ``apache-otava`` wheel pins ``numpy==2.2.*`` and ``scipy<1.17`` and
pulls in BigQuery, Slack and pg8000 clients: installing it would downgrade the
numerical stack every other part of inferops runs on.

1. **Split.** A window of ``window`` points (default 50) slides over the series
   in steps of half a window. Inside a window, E-divisive (Matteson & James,
   2014) picks the split that maximises the energy-distance statistic
   ``Q(τ) = τ(n-τ)/n · (2·mean|xᵢ-xⱼ|_between - mean|·|_left - mean|·|_right)``;
   instead of permutations, a two-sided Student t-test between the two sides
   judges it (deterministic, works with a handful of points). Accepted splits
   recurse on both sides. The first pass uses a relaxed p (10× the final one,
   as Otava does) and its union over windows are the *weak* change points.
2. **Merge.** The weakest change point (highest p, recomputed between its
   neighbouring change points) is dropped while its p is at or above
   ``max_pvalue`` or its relative change is below ``min_magnitude``;
   neighbours are re-tested after every removal.

The result is deterministic: the same series always gives the same points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Otava's defaults
WINDOW = 50
MAX_PVALUE = 0.001


@dataclass
class ChangePoint:
    """A change at ``index``: the series is different from ``index`` on."""

    index: int
    p_value: float
    mean_before: float
    mean_after: float
    std_before: float
    std_after: float

    @property
    def change(self) -> float:
        """Relative change of the segment mean, after/before - 1."""
        if self.mean_before == 0:
            return 0.0
        return self.mean_after / self.mean_before - 1.0

    @property
    def magnitude(self) -> float:
        """Largest of the forward and backward relative change (as Otava ranks them)."""
        back = self.mean_before / self.mean_after - 1.0 if self.mean_after else 0.0
        return max(abs(self.change), abs(back))


def _ttest(left: np.ndarray, right: np.ndarray) -> tuple[float, float, float, float, float]:
    from scipy.stats import ttest_ind_from_stats

    mean_l, mean_r = float(left.mean()), float(right.mean())
    std_l = float(left.std()) if len(left) >= 2 else 0.0
    std_r = float(right.std()) if len(right) >= 2 else 0.0
    if len(left) + len(right) <= 2:
        return 1.0, mean_l, mean_r, std_l, std_r
    if std_l == 0.0 and std_r == 0.0:
        p = 1.0 if mean_l == mean_r else 0.0
    else:
        p = float(ttest_ind_from_stats(mean_l, std_l, len(left), mean_r, std_r, len(right)).pvalue)
        if math.isnan(p):
            p = 1.0
    return p, mean_l, mean_r, std_l, std_r


def _candidate(x: np.ndarray, sat: np.ndarray, start: int, end: int) -> tuple[int, float] | None:
    """Best split τ of ``x[start:end]`` and its statistic, maximised over τ and κ ≤ end.

    ``Q(τ, κ) = (τ-s)(κ-τ)/(κ-s) · (2·between - within_left - within_right)`` on the
    mean absolute pairwise distances (Matteson & James's ê, power 1).
    """
    if end - start < 2:
        return None
    taus = np.arange(start + 1, end)[:, None]
    kappas = np.arange(start + 2, end + 1)[None, :]
    valid = kappas > taus
    s = start

    def block(r0, r1, c0, c1):
        return sat[r1, c1] - sat[r0, c1] - sat[r1, c0] + sat[r0, c0]

    left_n = taus - s
    right_n = np.where(valid, kappas - taus, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = block(s, taus, taus, kappas) / (left_n * right_n)
        within_l = np.where(left_n > 1, block(s, taus, s, taus) / (left_n * (left_n - 1)), 0.0)
        within_r = np.where(
            right_n > 1, block(taus, kappas, taus, kappas) / (right_n * (right_n - 1)), 0.0
        )
        q = left_n * right_n / (kappas - s) * (2 * between - within_l - within_r)
    q = np.where(valid, q, -np.inf)
    flat = int(np.argmax(q))
    return start + 1 + flat // q.shape[1], float(q.flat[flat])


def _split_window(x: np.ndarray, offset: int, pvalue: float) -> list[int]:
    """E-divisive on one window: keep taking the best candidate over all segments
    while it is significant; return absolute indices."""
    n = len(x)
    d = np.abs(x[:, None] - x[None, :])
    sat = np.zeros((n + 1, n + 1))
    sat[1:, 1:] = d.cumsum(0).cumsum(1)  # summed-area table: block sums in O(1)
    cuts: list[int] = []
    while True:
        bounds = [0, *cuts, n]
        best = None
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            cand = _candidate(x, sat, lo, hi)
            if cand is not None and (best is None or cand[1] > best[1]):
                best = (cand[0], cand[1], lo, hi)
        if best is None:
            break
        tau, _, lo, hi = best
        if _ttest(x[lo:tau], x[tau:hi])[0] >= pvalue:
            break
        cuts = sorted([*cuts, tau])
    return [offset + c for c in cuts]


def _stats(series: np.ndarray, indices: list[int], i: int) -> ChangePoint:
    lo = indices[i - 1] if i > 0 else 0
    hi = indices[i + 1] if i + 1 < len(indices) else len(series)
    idx = indices[i]
    p, mb, ma, sb, sa = _ttest(series[lo:idx], series[idx:hi])
    return ChangePoint(idx, p, mb, ma, sb, sa)


def change_points(
    series: Sequence[float],
    *,
    window: int = WINDOW,
    max_pvalue: float = MAX_PVALUE,
    min_magnitude: float = 0.0,
) -> list[ChangePoint]:
    """Change points of ``series`` (oldest first); empty with fewer than 3 points."""
    x = np.asarray(series, dtype=float)
    if len(x) < 3 or not np.all(np.isfinite(x)):
        return []
    window = max(2, window)
    first_pass = max_pvalue * 10 if max_pvalue < 0.05 else min(1.0, max_pvalue * 2)
    weak: set[int] = set()
    step = max(1, window // 2)
    start = 0
    while start < len(x):
        end = min(start + window, len(x))
        found = _split_window(x[start:end], start, first_pass)
        weak.update(found)
        start = max(found[-1] if found else 0, start + step)
    indices = sorted(i for i in weak if 0 < i < len(x))
    points = [_stats(x, indices, i) for i in range(len(indices))]
    while points:
        weakest = max(range(len(points)), key=lambda i: points[i].p_value)
        if points[weakest].p_value < max_pvalue:
            weakest = min(range(len(points)), key=lambda i: points[i].magnitude)
            if points[weakest].magnitude > min_magnitude:
                break
        del indices[weakest]
        points = [_stats(x, indices, i) for i in range(len(indices))]
    return points
