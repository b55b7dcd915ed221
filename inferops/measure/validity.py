"""Can a run's numbers be trusted? Early stopping (MLPerf) and stability (perf_analyzer).

Every P99 claim carries the MLPerf early-stopping verdict: a one-sided binomial
test at 99 % confidence that the true fraction of requests over the latency
bound is at most 1 %. With ``n`` samples the run may have at most
:func:`max_over_allowed` requests over the bound (0 for 459 samples, 77 for
10,000); with fewer than :data:`MIN_SAMPLES_P99` no P99 claim can be made at all.
"""

from __future__ import annotations

from functools import lru_cache

#: generator limits beyond which the load generator, not the target, is measured
MAX_LATE_SENDS_PCT = 1.0
MAX_GENERATOR_CPU_PCT = 90.0
#: how a validity reason begins when the generator, not the target, was measured (sweeps
#: retry such a rate, demos and tests recognise it)
GENERATOR_LIMITED = "load generator limited"
#: how a validity reason begins when open-loop arrivals were refused by --max-inflight
INFLIGHT_CAP = "in-flight cap"
#: a send is "late" when it leaves this long after its intended time (floor)
LATE_TOLERANCE_S = 0.001
#: default lateness budget, as a share of the P99 bound the run is judged by
LATE_TOLERANCE_SHARE_OF_BOUND = 0.05


def default_late_tolerance_s(bound_ms: float | None) -> float:
    """How late a send may leave before it counts as late, when the user did not say.

    A late send adds its lag to the CO-corrected latency, so what matters is
    the lag *relative to the latency bound being proven*: 5 % of the P99 bound,
    and never less than 1 ms. A 1 ms rule for a 100 ms SLO would flag ordinary
    event-loop jitter of a Python generator as "generator limited" while it
    moves the measured P99 by at most 1-3 %.
    """
    if not bound_ms or bound_ms <= 0:
        return LATE_TOLERANCE_S
    return max(LATE_TOLERANCE_S, bound_ms / 1000.0 * LATE_TOLERANCE_SHARE_OF_BOUND)


def worker_reasons(nodes: list[dict]) -> list[str]:
    """Why the run cannot be trusted because of one load-generating worker (named).

    ``nodes``: the summary's ``workers.nodes`` (late_sends_pct, cpu_pct_max, dropped).
    A cluster's late-send rate can stay under the limit while one of four
    workers is far over it: each worker is judged on its own.
    """
    reasons = []
    for node in nodes:
        name = f"worker {node['worker']}"
        late = node.get("late_sends_pct")
        if late is not None and late > MAX_LATE_SENDS_PCT:
            reasons.append(
                f"{GENERATOR_LIMITED}: {name} sent {late:.2f} % of its arrivals late "
                f"(limit {MAX_LATE_SENDS_PCT:g} %)"
            )
        cpu = node.get("cpu_pct_max")
        if cpu is not None and cpu > MAX_GENERATOR_CPU_PCT:
            reasons.append(
                f"{GENERATOR_LIMITED}: {name} CPU reached {cpu:.0f} % "
                f"(> {MAX_GENERATOR_CPU_PCT:g} %)"
            )
        if node.get("dropped"):
            reasons.append(f"{INFLIGHT_CAP} reached on {name}: {node['dropped']} arrivals not sent")
    return reasons


@lru_cache(maxsize=4096)
def max_over_allowed(n: int, percentile: float = 0.99, confidence: float = 0.99) -> int | None:
    """Largest number of over-bound samples out of ``n`` that still proves the percentile.

    ``None`` when even zero over-bound samples prove nothing (too few samples).
    """
    from scipy.stats import binom

    if n <= 0:
        return None
    p_over = 1.0 - percentile
    alpha = 1.0 - confidence
    # cdf is increasing in k: the last k with cdf <= alpha, found by bisection.
    if binom.cdf(0, n, p_over) > alpha:
        return None
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if binom.cdf(mid, n, p_over) <= alpha:
            lo = mid
        else:
            hi = mid - 1
    return lo


def all_generator_limited(reasons: list[str]) -> bool:
    """Whether a run is invalid and every reason is the generator's (late sends or its CPU)."""
    return bool(reasons) and all(r.startswith(GENERATOR_LIMITED) for r in reasons)


@lru_cache(maxsize=4096)
def min_over_to_prove_breach(
    n: int, percentile: float = 0.99, confidence: float = 0.99
) -> int | None:
    """Fewest over-bound samples out of ``n`` that prove the percentile *over* the bound.

    The early-stopping test turned around: if at most 1 % of requests were truly over the
    bound, seeing this many or more would happen with probability at most 1 - confidence.
    ``None`` when even all ``n`` over the bound prove nothing.
    """
    from scipy.stats import binom

    if n <= 0:
        return None
    # isf: the smallest k with P(X > k) <= alpha, so k + 1 or more prove it
    needed = int(binom.isf(1.0 - confidence, n, 1.0 - percentile)) + 1
    return needed if needed <= n else None


def min_samples(percentile: float = 0.99, confidence: float = 0.99) -> int:
    """Fewest samples for which zero over-bound samples proves the percentile."""
    import math

    return math.ceil(math.log(1.0 - confidence) / math.log(percentile) - 1e-12)


MIN_SAMPLES_P99 = 459
#: what a planned load test aims for (a sweep step, a rollout's load test): open-loop
#: arrivals are Poisson, so a test planned at exactly 459 falls short half the time, one at
#: a mean of 480 in ~17 % of tests; at a mean of 600, 459 is 5.7 standard deviations away
PLANNED_SAMPLES_P99 = 600


def early_stopping(
    samples: int,
    over_bound: int,
    bound_ms: float,
    *,
    percentile: float = 0.99,
    confidence: float = 0.99,
) -> dict:
    """The early-stopping verdict as stored in ``summary.json``."""
    allowed = max_over_allowed(samples, percentile, confidence)
    return {
        "percentile": percentile,
        "confidence": confidence,
        "bound_ms": bound_ms,
        "samples": samples,
        "over_bound": over_bound,
        "max_over_allowed": allowed,
        "ok": allowed is not None and over_bound <= allowed,
    }


def stability(windows: list[float], tolerance: float = 0.10) -> dict:
    """perf_analyzer's rule: the last three windows agree within ``tolerance``.

    ``windows`` are per-window throughputs (req/s); each of the last three must
    lie within ``tolerance`` of their mean.
    """
    last = [float(w) for w in windows[-3:]]
    stable = False
    if len(last) == 3:
        mean = sum(last) / 3
        stable = mean > 0 and all(abs(w - mean) <= tolerance * mean for w in last)
    return {"windows": [round(w, 3) for w in last], "tolerance": tolerance, "stable": stable}
