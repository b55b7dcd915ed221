"""One run against another: are they comparable, and which metrics moved?

A metric is flagged (a regression, or an improvement) only when all hold:

* its relative effect is at least ``min_effect`` (default 5 %);
* the named test gives p below ``p_value`` (default 0.01);
* the bootstrap confidence interval (at ``1 - p_value``) excludes no change.

Latency is compared on the whole distribution: P50, P90, P99 and P99.9, each
with a bootstrap over both HDR histograms, and each only when both runs have the
samples a claim on that quantile needs (459 for a P99, 4,603 for a P99.9; the
rule of :mod:`inferops.measure.validity`): otherwise it is "untested". For P50
and P99 the deciding test is Mann-Whitney U on the per-second windows when both
runs have at least :data:`~inferops.history.stats.MIN_WINDOWS` of them (closer
to independent samples than single requests). Error rates: Fisher's exact test, with an
absolute minimum change. Sweeps: max QPS at the SLO, flagged when the two
bisection brackets do not overlap. Runs that cannot be compared (invalid,
partial, different SLO, protocol, model, mode or fixed rate) are refused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from inferops.exitcodes import BREACH, INVALID, OK
from inferops.history import attribution, stats
from inferops.history.metrics import METRICS, headline
from inferops.history.runsource import RunData, decode_hdr

#: fixed-rate runs at rates further apart than this are different scenarios
RATE_TOLERANCE = 0.01


@dataclass
class Knobs:
    min_effect: float = 0.05
    p_value: float = 0.01
    #: error rates: the smallest absolute change worth flagging (0.001 = 0.1 point)
    min_error_rate_delta: float = 0.001
    bootstrap_reps: int = 2000
    seed: int = 0


@dataclass
class MetricChange:
    metric: str
    label: str
    unit: str
    baseline: float | None
    candidate: float | None
    effect: float | None  # relative (error rate: absolute difference)
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str
    verdict: str  # regression | improvement | unchanged | untested

    @property
    def flagged(self) -> bool:
        return self.verdict in ("regression", "improvement")


@dataclass
class Comparison:
    baseline: str
    candidate: str
    problems: list[str] = field(default_factory=list)
    changes: list[MetricChange] = field(default_factory=list)
    environment: list[dict] = field(default_factory=list)
    knobs: Knobs = field(default_factory=Knobs)

    @property
    def comparable(self) -> bool:
        return not self.problems

    @property
    def regressions(self) -> list[MetricChange]:
        return [c for c in self.changes if c.verdict == "regression"]

    @property
    def improvements(self) -> list[MetricChange]:
        return [c for c in self.changes if c.verdict == "improvement"]

    @property
    def exit_code(self) -> int:
        if not self.comparable:
            return INVALID
        return BREACH if self.regressions else OK

    def to_json(self) -> dict:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "comparable": self.comparable,
            "problems": self.problems,
            "knobs": asdict(self.knobs),
            "metrics": [asdict(c) for c in self.changes],
            "regressions": [c.metric for c in self.regressions],
            "improvements": [c.metric for c in self.improvements],
            "environment_changes": self.environment,
            "exit_code": self.exit_code,
        }


# -- comparability -------------------------------------------------------------------
def slo_bound_ms(run: RunData) -> float | None:
    """The P99 bound the run was judged by: the sweep SLO, else the early-stopping bound,
    else the ``p99_latency_ms`` threshold."""
    s = run.summary
    for value in (
        (s.get("slo") or {}).get("p99_ms"),
        (s.get("early_stopping") or {}).get("bound_ms"),
        (run.manifest.get("thresholds") or {}).get("p99_latency_ms"),
    ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def problems(baseline: RunData, candidate: RunData) -> list[str]:
    """Why the two runs cannot be compared (empty when they can)."""
    out = []
    for role, run in (("baseline", baseline), ("candidate", candidate)):
        s = run.summary
        if s.get("partial"):
            out.append(f"{role} run {run.label} is partial (interrupted)")
        elif not s.get("valid", False):
            reasons = "; ".join(map(str, s.get("validity") or [])) or "marked invalid"
            out.append(f"{role} run {run.label} is invalid: {reasons}")
    a, b = baseline.summary, candidate.summary
    for key in ("protocol", "model", "mode"):
        if a.get(key) != b.get(key):
            out.append(f"different {key}: {a.get(key)!r} vs {b.get(key)!r}")
    slo_a, slo_b = slo_bound_ms(baseline), slo_bound_ms(candidate)
    if slo_a != slo_b:
        out.append(f"different SLO: P99 <= {_fmt(slo_a)} ms vs P99 <= {_fmt(slo_b)} ms")
    if a.get("mode") == "open" and b.get("mode") == "open":
        ra, rb = a.get("offered_qps"), b.get("offered_qps")
        if ra and rb and abs(rb / ra - 1) > RATE_TOLERANCE:
            out.append(f"different fixed rate: {ra:g} vs {rb:g} req/s")
    return out


def _fmt(v: float | None) -> str:
    return "none" if v is None else f"{v:g}"


# -- metrics -----------------------------------------------------------------------------
def _judge(effect, ci_low, ci_high, p, knobs: Knobs, higher_is_worse: bool, threshold: float):
    if effect is None or p is None:
        return "untested"
    excludes_zero = ci_low is None or ci_low > 0 or ci_high < 0
    if p < knobs.p_value and abs(effect) >= threshold and excludes_zero:
        worse = effect > 0 if higher_is_worse else effect < 0
        return "regression" if worse else "improvement"
    return "unchanged"


_QUANTILE_METRICS = {
    "latency_p50_ms": ("latency", "p50", "p50_ms"),
    "latency_p90_ms": ("latency", "p90", None),
    "latency_p99_ms": ("latency", "p99", "p99_ms"),
    "latency_p999_ms": ("latency", "p999", None),
    "ttft_p99_ms": ("ttft", "p99", None),
    "tpot_p99_ms": ("tpot", "p99", None),
}


def _quantile_changes(
    baseline: RunData, candidate: RunData, names: list[str], knobs: Knobs
) -> list[MetricChange]:
    out = []
    by_hist: dict[str, dict] = {}
    totals: dict[str, tuple[int, int]] = {}
    for name in names:
        hist_name, q, window_col = _QUANTILE_METRICS[name]
        metric = METRICS[name]
        base_v, cand_v = metric.value(baseline.summary), metric.value(candidate.summary)
        if hist_name not in by_hist:
            if hist_name in baseline.histograms and hist_name in candidate.histograms:
                a = stats.HistogramCounts.from_hdr(decode_hdr(baseline.histograms[hist_name]))
                b = stats.HistogramCounts.from_hdr(decode_hdr(candidate.histograms[hist_name]))
                totals[hist_name] = (a.total, b.total)
                by_hist[hist_name] = (
                    stats.bootstrap_quantile_ratios(
                        a,
                        b,
                        confidence=1 - knobs.p_value,
                        reps=knobs.bootstrap_reps,
                        seed=knobs.seed,
                    )
                    if a.total and b.total
                    else {}
                )
            else:
                by_hist[hist_name] = {}
        est = by_hist[hist_name].get(q)
        too_few = _too_few_samples(q, totals.get(hist_name))
        if est is None or too_few:
            effect = cand_v / base_v - 1 if base_v and cand_v is not None else None
            why = too_few or "none: no histogram in both runs"
            untested = MetricChange(
                name, metric.label, metric.unit, base_v, cand_v, effect, None, None, None,
                why, "untested",
            )  # fmt: skip
            out.append(untested)
            continue
        p, test = est.p_value, est.test
        if window_col:
            mwu = stats.mann_whitney_windows(
                baseline.windows.get(window_col) or [], candidate.windows.get(window_col) or []
            )
            if mwu is not None:
                p = mwu[0]
                test = (
                    f"Mann-Whitney U on per-second {q.upper()} ({mwu[1]} vs {mwu[2]} windows);"
                    f" CI: {est.test}"
                )
        verdict = _judge(
            est.effect, est.ci_low, est.ci_high, p, knobs, metric.higher_is_worse, knobs.min_effect
        )
        out.append(
            MetricChange(
                name, metric.label, metric.unit, base_v, cand_v, est.effect, est.ci_low,
                est.ci_high, p, test, verdict,
            )
        )  # fmt: skip
    return out


def _too_few_samples(q: str, totals: tuple[int, int] | None) -> str | None:
    """Why a quantile cannot be judged on these runs' sample counts (None: it can).

    The same rule as a run's own P99 claim (measure.validity): a quantile needs the samples
    for which even zero values above it would prove it at 99 % confidence, 459 for a P99 and
    4,603 for a P99.9. Below that the quantile is one of the few largest values, which one
    stall of the machine sets, and a bootstrap of such extreme order statistics cannot tell
    that stall from a slower version."""
    from inferops.measure.validity import min_samples

    if totals is None:
        return None
    needed = min_samples(stats.QUANTILES[q] / 100.0)
    fewest = min(totals)
    if fewest >= needed:
        return None
    return f"none: {fewest:,} samples in a run; a P{stats.QUANTILES[q]:g} claim needs {needed:,}"


def _error_rate_change(baseline: RunData, candidate: RunData, knobs: Knobs) -> MetricChange:
    metric = METRICS["error_rate"]
    a, b = baseline.summary, candidate.summary
    fa, na = int(a.get("failures") or 0), int(a.get("requests") or 0)
    fb, nb = int(b.get("failures") or 0), int(b.get("requests") or 0)
    if na <= 0 or nb <= 0:
        return MetricChange(
            "error_rate", metric.label, "", None, None, None, None, None, None,
            "none: no requests", "untested",
        )  # fmt: skip
    ra, rb = fa / na, fb / nb
    p = stats.error_rate_test(fa, na, fb, nb)
    # Wald interval of the difference, at the same confidence as the test
    from scipy.stats import norm

    z = float(norm.ppf(1 - knobs.p_value / 2))
    se = math.sqrt(ra * (1 - ra) / na + rb * (1 - rb) / nb)
    delta = rb - ra
    verdict = _judge(
        delta, delta - z * se, delta + z * se, p, knobs, True, knobs.min_error_rate_delta
    )
    return MetricChange(
        "error_rate", metric.label, "", ra, rb, delta, delta - z * se, delta + z * se, p,
        "Fisher's exact test on failures/requests (effect: absolute difference)", verdict,
    )  # fmt: skip


def _max_qps_change(baseline: RunData, candidate: RunData, knobs: Knobs) -> MetricChange:
    metric = METRICS["max_qps"]
    sa, sb = baseline.summary.get("slo") or {}, candidate.summary.get("slo") or {}
    qa, qb = metric.value(baseline.summary), metric.value(candidate.summary)
    if not qa or qb is None:
        return MetricChange(
            "max_qps", metric.label, metric.unit, qa, qb, None, None, None, None,
            "none: a sweep found no capacity", "untested",
        )  # fmt: skip
    effect = qb / qa - 1
    # the true capacity lies in [max_qps, max_qps * (1 + precision)]
    pa, pb = float(sa.get("precision") or 0.02), float(sb.get("precision") or 0.02)
    low = qb / (qa * (1 + pa)) - 1
    high = qb * (1 + pb) / qa - 1
    separated = low > 0 or high < 0
    converged = bool(sa.get("converged", True)) and bool(sb.get("converged", True))
    verdict = "unchanged"
    if converged and separated and abs(effect) >= knobs.min_effect:
        verdict = "improvement" if effect > 0 else "regression"
    return MetricChange(
        "max_qps", metric.label, metric.unit, qa, qb, effect, low, high, None,
        "sweep bisection brackets (disjoint = moved; run-to-run spread: see history)", verdict,
    )  # fmt: skip


def compare(baseline: RunData, candidate: RunData, knobs: Knobs | None = None) -> Comparison:
    """Compare ``candidate`` with ``baseline``; the metrics judged depend on the run kind."""
    knobs = knobs or Knobs()
    result = Comparison(
        baseline=baseline.label,
        candidate=candidate.label,
        problems=problems(baseline, candidate),
        environment=attribution.diff(baseline.manifest, candidate.manifest),
        knobs=knobs,
    )
    if result.problems:
        return result
    names = headline(candidate.summary)
    quantiles = [n for n in names if n in _QUANTILE_METRICS]
    result.changes += _quantile_changes(baseline, candidate, quantiles, knobs)
    if "max_qps" in names:
        result.changes.append(_max_qps_change(baseline, candidate, knobs))
    if "error_rate" in names:
        result.changes.append(_error_rate_change(baseline, candidate, knobs))
    order = {n: i for i, n in enumerate(names)}
    result.changes.sort(key=lambda c: order.get(c.metric, 99))
    return result


# -- text output --------------------------------------------------------------------------------
def _value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "":
        return f"{100 * v:.3g} %"
    return f"{v:.4g} {unit}"


def _pct(v: float | None, absolute: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:+.2f} pt" if absolute else f"{100 * v:+.1f} %"


def render_text(result: Comparison) -> str:
    lines = [f"baseline:  {result.baseline}", f"candidate: {result.candidate}"]
    if not result.comparable:
        lines += [f"not comparable: {p}" for p in result.problems]
        return "\n".join(lines)
    conf = f"{100 * (1 - result.knobs.p_value):g}% CI"
    header = f"{'metric':<26}{'baseline':>12}{'candidate':>12}{'change':>11}  {conf:<22}{'p':>9}  verdict"
    lines += ["", header, "-" * len(header)]
    for c in result.changes:
        absolute = c.metric == "error_rate"
        ci = (
            "-"
            if c.ci_low is None
            else f"[{_pct(c.ci_low, absolute)}, {_pct(c.ci_high, absolute)}]"
        )
        p = "-" if c.p_value is None else f"{c.p_value:.2g}"
        lines.append(
            f"{c.label:<26}{_value(c.baseline, c.unit):>12}{_value(c.candidate, c.unit):>12}"
            f"{_pct(c.effect, absolute):>11}  {ci:<22}{p:>9}  {c.verdict}"
        )
    lines.append("")
    for c in result.changes:
        if c.flagged or c.verdict == "untested":
            lines.append(f"{c.label}: {c.verdict}, test: {c.test}")
    lines.append(f"environment: {attribution.describe(result.environment)}")
    return "\n".join(lines)
