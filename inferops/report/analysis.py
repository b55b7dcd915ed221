"""Turn validated runs and the user's options into the facts the report shows.

Everything numeric in the HTML comes from here (charts aside), so tests can
check the page against these values and these values against the inputs.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferops import thresholds as thresholds_mod
from inferops.exitcodes import UsageError
from inferops.measure.runformat import Manifest, Summary
from inferops.measure.validity import MAX_GENERATOR_CPU_PCT, MAX_LATE_SENDS_PCT
from inferops.report import sizing
from inferops.report.catalog import Hardware, for_profile
from inferops.report.llm import LlmFacts, llm_facts
from inferops.report.runs import Run
from inferops.thresholds import Setting, Slo, meets_slo

#: the peaks summary.host may hold (a run that never reached its target has none)
HOST_PEAKS = (
    "cpu_pct_max",
    "memory_pct_max",
    "gpu_util_pct_max",
    "gpu_mem_pct_max",
    "gpu_power_w_max",
    "gpu_temp_c_max",
)
#: multiples of the target shown in the "nodes vs target" table
TARGET_MULTIPLES = (0.25, 0.5, 1, 2, 4, 10)
DEFAULT_HEADROOM = 0.15


@dataclass
class Options:
    target_qps: float | None = None
    slo_p99_ms: float | None = None
    headroom: float | None = None
    thresholds_path: str | Path | None = None
    catalog: list[Hardware] = field(default_factory=list)
    catalog_source: str = ""


def _fmt(x: float) -> str:
    return f"{x:g}"


def resolve_slo(runs: list[Run], option: float | None, limits: dict) -> Setting:
    """One SLO per report: runs swept at different SLOs are an error (exit 2)."""
    swept: dict[float, list[str]] = {}
    for run in runs:
        if run.slo_p99_ms is not None:
            swept.setdefault(run.slo_p99_ms, []).append(str(run.path))
    if len(swept) > 1:
        detail = "; ".join(f"{_fmt(v)} ms: {', '.join(p)}" for v, p in sorted(swept.items()))
        raise UsageError(
            f"runs were swept against different SLOs ({detail}); "
            "report runs with the same SLO together"
        )
    bound = thresholds_mod.resolve_bound(option, limits, recorded=next(iter(swept), None))
    if not bound.is_set:
        raise UsageError(
            "no SLO: pass --slo-p99-ms (the runs are not sweeps and the "
            "thresholds have no p99_latency_ms)"
        )
    return bound


def resolve_limits(runs: list[Run], path: str | Path | None) -> tuple[dict, str]:
    """Thresholds for headroom/target: --thresholds, else the runs' manifest, else defaults."""
    if path is not None:
        return thresholds_mod.load(path), str(path)
    for run in runs:
        recorded = run.manifest.thresholds if run.manifest else None
        if isinstance(recorded, dict) and recorded:
            source = f"{run.path / 'manifest.json'} thresholds"
            return thresholds_mod.validate(recorded, source=source), source
    return dict(thresholds_mod.DEFAULTS), "built-in defaults"


def resolve_headroom(option: float | None, limits: dict, limits_source: str) -> Setting:
    if option is not None:
        return Setting(float(option), "--headroom")
    if "max_cpu_percent" in limits:
        cpu = limits["max_cpu_percent"]
        return Setting(
            round(1 - cpu / 100, 6), f"1 - max_cpu_percent/100 ({_fmt(cpu)} % in {limits_source})"
        )
    return Setting(DEFAULT_HEADROOM, "default (no max_cpu_percent threshold)")


def resolve_target(option: float | None, limits: dict, limits_source: str) -> Setting:
    if option is not None:
        return Setting(float(option), "--target-qps")
    if limits.get("min_qps", 0) > 0:
        return Setting(limits["min_qps"], f"min_qps in {limits_source}")
    raise UsageError("no target: pass --target-qps (the thresholds have no min_qps)")


# --- the facts the template shows (dataclasses, so a typo fails in Python, not in HTML) ---


@dataclass
class GeneratorVerdict:
    """Was the load generator the bottleneck? True / False / None (not recorded)."""

    bottleneck: bool | None
    evidence: str


@dataclass
class CurvePoint:
    """One point of the latency-vs-throughput curve (a sweep step, or the run itself)."""

    offered_qps: float | None
    achieved_qps: float | None
    p99_ms: float | None
    valid: bool
    dir: str | None
    error_rate: float | None
    meets_slo: bool = False


@dataclass
class NodeModelFacts:
    servers: int
    service_ms: float
    service_source: str
    peak_qps: float
    capacity_qps: float
    p99_all_up_ms: float
    p99_one_down_ms: float
    p99_at_max_model_ms: float  # the model against the measurement it was fitted from
    nodes_by_queueing: int | None


@dataclass
class TargetRow:
    target_qps: float
    nodes: int
    proposed: int
    queueing_nodes: int | None = None
    p99_ms: float | None = None


@dataclass
class CostRow:
    hardware: str
    cpu: str
    gpu: str
    hourly_usd: float
    note: str
    nodes: int
    monthly_usd: float
    per_million_usd: float
    energy_kwh: float | None


@dataclass
class Sizing:
    """The sizing of one run, or ``refused`` with the reason it was not sized."""

    refused: str | None = None
    max_qps_at_slo: float | None = None
    p99_at_max_ms: float | None = None
    usable_qps_per_node: float | None = None
    nodes: int | None = None
    proposed: int | None = None
    single_rate: bool = False
    model: NodeModelFacts | None = None
    by_target: list[TargetRow] = field(default_factory=list)
    costs: list[CostRow] = field(default_factory=list)


@dataclass
class RunFacts:
    """Everything the report says about one run folder."""

    label: str
    profile: str
    path: str
    summary: Summary
    manifest: Manifest | None
    notes: list[str]
    valid: bool
    passed: bool
    validity: list[str]
    partial: bool
    thresholds: list[dict]
    generator: GeneratorVerdict
    curve: list[CurvePoint]
    max_qps_at_slo: float | None
    recorded_max_qps: float | None
    sweep_notes: list[str]
    percentiles: dict | None
    sizing: Sizing
    has_gpu: bool
    #: peak host metrics, every key present (None: not measured)
    host: dict = field(default_factory=dict)
    #: the hosts under test when their metrics came from Prometheus (bench --instance)
    host_instances: list = field(default_factory=list)
    #: protocol openai: TTFT/TPOT/tokens curves and token sizing (None for other runs)
    llm: LlmFacts | None = None
    # charts, filled in by render
    curve_svg: str | None = None
    timeseries_svg: str | None = None
    timeseries_note: str = ""
    resources_svg: str | None = None
    timeseries_columns: list[str] = field(default_factory=list)


@dataclass
class FleetCheckRow:
    """A run measured through a load balancer (``bench --nodes N``) against the sizing
    model's prediction from a one-node run of the same model and protocol."""

    label: str
    nodes: int
    baseline: str  # label of the one-node run the prediction comes from
    baseline_qps: float
    predicted_qps: float
    measured_qps: float | None  # None: the N-node run met the SLO at no valid step
    error_pct: float | None  # (measured - predicted) / predicted x 100
    within: bool | None  # |error| <= tolerance


@dataclass
class Facts:
    """The whole report's facts: the settings in force and one RunFacts per run."""

    slo: Setting
    headroom: Setting
    target: Setting
    limits: dict
    limits_source: str
    catalog_source: str
    runs: list[RunFacts]
    all_passed: bool
    all_valid: bool
    target_multiples: tuple = TARGET_MULTIPLES
    #: optimisation profiles side by side (report.profiles), None without profile runs
    profiles: Any = None
    #: predicted vs measured capacity of N-node runs (empty without any)
    fleet_check: list[FleetCheckRow] = field(default_factory=list)
    fleet_check_tolerance_pct: float = sizing.FLEET_CHECK_TOLERANCE * 100

    @property
    def llm_runs(self) -> list[RunFacts]:
        return [r for r in self.runs if r.llm is not None]


def generator_verdict(summary: Summary) -> GeneratorVerdict:
    """The recorded verdict on the load generator, with the evidence (never re-judged)."""
    late, cpu = summary.late_sends_pct, summary.generator_cpu_pct_max
    reasons = [r for r in summary.validity if "generator" in str(r).lower()]
    evidence = []
    if late is not None:
        evidence.append(f"late sends {late:.2f} % (limit {MAX_LATE_SENDS_PCT:g} %)")
    if cpu is not None:
        evidence.append(f"generator CPU max {cpu:.0f} % (limit {MAX_GENERATOR_CPU_PCT:g} %)")
    if late is None and cpu is None and not reasons:
        return GeneratorVerdict(None, "not recorded")
    # the validity reasons are listed beside the verdict already; name them only when
    # they are the sole evidence
    return GeneratorVerdict(bool(reasons), "; ".join(evidence or reasons))


def curve(run: Run, slo_ms: float, max_error_rate: float | None = None) -> list[CurvePoint]:
    """Latency-vs-throughput points: the sweep steps, or the run itself as one point.

    A point meets the SLO by :func:`inferops.thresholds.meets_slo`. At the
    sweep's own SLO the sweep's recorded per-step ``ok`` (which also demanded
    early-stopping proof) is used as is.
    """
    slo = run.slo
    if slo and slo.steps:
        points = [
            CurvePoint(
                offered_qps=s.offered_qps,
                achieved_qps=_float(s.achieved_qps),
                p99_ms=s.p99_ms,
                valid=s.valid,
                dir=s.dir,
                error_rate=s.error_rate,
                meets_slo=s.ok,
            )
            for s in slo.steps
        ]
        # an LLM sweep bounds TTFT/TPOT, not E2E P99: its step verdicts are not about slo_ms
        same_slo = slo.p99_ms is not None and abs(float(slo.p99_ms) - slo_ms) < 1e-9
    else:
        s = run.summary
        points = [
            CurvePoint(
                offered_qps=s.offered_qps,
                achieved_qps=_float(s.achieved_qps),
                p99_ms=s.latency_ms["p99"],
                valid=run.valid,
                dir=None,
                error_rate=s.error_rate,
            )
        ]
        same_slo = False
    rule = Slo(slo_ms, max_error_rate)
    for p in points:
        if p.achieved_qps is None:  # nothing completed (e.g. interrupted at once)
            p.valid = False
        p.meets_slo = bool(p.meets_slo and p.valid) if same_slo else meets_slo(p, rule)
    return points


def _float(value) -> float | None:
    return None if value is None else float(value)


def max_qps_at_slo(points: list[CurvePoint]) -> CurvePoint | None:
    """The highest achieved QPS among valid points meeting the SLO (None if none)."""
    ok = [p for p in points if p.meets_slo and p.achieved_qps]
    return max(ok, key=lambda p: p.achieved_qps) if ok else None


def _hist_ms(hist, percentile: float) -> float:
    return hist.get_value_at_percentile(percentile) / 1000.0


def whole_run_percentiles(run: Run) -> dict | None:
    """p50/p90/p99/p99.9/max over the whole run from latency.hdr (None without it)."""
    h = run.latency
    if h is None or h.get_total_count() == 0:
        return None
    return {
        "p50": _hist_ms(h, 50),
        "p90": _hist_ms(h, 90),
        "p99": _hist_ms(h, 99),
        "p999": _hist_ms(h, 99.9),
        "max": h.get_max_value() / 1000.0,
        "count": h.get_total_count(),
    }


def service_time_estimate(run: Run) -> tuple[float, str] | None:
    """Mean service time (ms) at the lightest valid load, and where it came from."""
    candidates = [
        s
        for s in run.steps
        if s.valid and s.service_time is not None and s.service_time.get_total_count() > 0
    ]
    if candidates:
        lightest = min(candidates, key=lambda s: s.summary.achieved_qps or 0.0)
        rel = lightest.path.relative_to(run.path)
        return lightest.service_time.get_mean_value() / 1000.0, (
            f"mean of {rel}/service_time.hdr (lightest valid step, "
            f"{lightest.summary.achieved_qps or 0:.1f} req/s)"
        )
    if run.service_time is not None and run.service_time.get_total_count() > 0:
        return run.service_time.get_mean_value() / 1000.0, "mean of service_time.hdr"
    p50 = (run.summary.service_time_ms or {}).get("p50")
    if p50:
        # only the median is known: assume exponential service, mean = median / ln 2
        return p50 / math.log(2), "service_time_ms.p50 / ln 2 (no service_time.hdr)"
    return None


def size_run(
    run: Run,
    points: list[CurvePoint],
    *,
    target: float,
    slo_ms: float,
    headroom: float,
    catalog: list[Hardware],
    profile: str,
) -> Sizing:
    """The sizing of one run, or the reason it was refused."""
    if not run.valid:
        why = list(run.summary.validity)
        if run.summary.partial:
            why.insert(0, "the run is partial (interrupted)")
        return Sizing(refused="the run is invalid: " + ("; ".join(why) or "marked invalid"))
    best = max_qps_at_slo(points)
    if best is None:
        return Sizing(refused=f"no valid step met the P99 SLO of {_fmt(slo_ms)} ms")
    capacity = best.achieved_qps
    nodes = sizing.nodes_for_target(target, capacity, headroom)
    proposed = nodes + 1
    model = _node_model(run, points, capacity, target=target, slo_ms=slo_ms, nodes=nodes)
    return Sizing(
        max_qps_at_slo=capacity,
        p99_at_max_ms=best.p99_ms,
        usable_qps_per_node=capacity * (1 - headroom),
        nodes=nodes,
        proposed=proposed,
        single_rate=not (run.slo and run.slo.steps),
        model=model,
        by_target=_by_target(target, capacity, headroom, model, slo_ms),
        costs=_costs(catalog, profile, proposed, target),
    )


def _node_model(run, points, capacity, *, target, slo_ms, nodes) -> NodeModelFacts | None:
    """The M/M/k cross-check fitted from the measured service time (None without one)."""
    svc = service_time_estimate(run)
    if svc is None or svc[0] <= 0:
        return None
    peak = max((p.achieved_qps for p in points if p.valid and p.achieved_qps), default=capacity)
    model = sizing.fit_node_model(peak, svc[0])
    return NodeModelFacts(
        servers=model.servers,
        service_ms=model.service_ms,
        service_source=svc[1],
        peak_qps=peak,
        capacity_qps=model.capacity_qps,
        p99_all_up_ms=model.p99_ms(target / (nodes + 1)),
        p99_one_down_ms=model.p99_ms(target / nodes),
        p99_at_max_model_ms=model.p99_ms(capacity),
        nodes_by_queueing=sizing.nodes_by_queueing(model, target, slo_ms),
    )


def _by_target(target, capacity, headroom, model, slo_ms) -> list[TargetRow]:
    fitted = None if model is None else sizing.NodeModel(model.servers, model.service_ms)
    rows = []
    for mult in TARGET_MULTIPLES:
        t = target * mult
        n = sizing.nodes_for_target(t, capacity, headroom)
        row = TargetRow(target_qps=t, nodes=n, proposed=n + 1)
        if fitted is not None:
            q = sizing.nodes_by_queueing(fitted, t, slo_ms)
            row.queueing_nodes = None if q is None else q + 1
            row.p99_ms = fitted.p99_ms(t / (n + 1))
        rows.append(row)
    return rows


def _costs(catalog, profile, proposed, target) -> list[CostRow]:
    costs = []
    for hw in for_profile(catalog, profile):
        monthly = sizing.monthly_cost_usd(proposed, hw.hourly_usd)
        costs.append(
            CostRow(
                hardware=hw.name,
                cpu=hw.cpu,
                gpu=hw.gpu or "none",
                hourly_usd=hw.hourly_usd,
                note=hw.note,
                nodes=proposed,
                monthly_usd=monthly,
                per_million_usd=sizing.cost_per_million_usd(monthly, target),
                energy_kwh=sizing.monthly_energy_kwh(proposed, hw.power_w),
            )
        )
    return costs


def _labels(runs: list[Run]) -> list[str]:
    counts = Counter(r.profile for r in runs)
    return [r.profile if counts[r.profile] == 1 else f"{r.profile} ({r.path.name})" for r in runs]


def run_facts(
    run: Run,
    label: str,
    *,
    slo: Setting,
    target: Setting,
    headroom: Setting,
    limits: dict,
    catalog: list[Hardware],
) -> RunFacts:
    """The facts of one run: verdicts as recorded, the curve, the sizing."""
    s = run.summary
    points = curve(run, slo.value, limits.get("max_error_rate"))
    best = max_qps_at_slo(points)
    return RunFacts(
        label=label,
        profile=run.profile,
        path=str(run.path),
        summary=s,
        manifest=run.manifest,
        notes=run.notes,
        valid=run.valid,
        passed=bool(s.passed),
        validity=list(s.validity),
        partial=bool(s.partial),
        thresholds=s.thresholds,
        generator=generator_verdict(s),
        curve=points,
        max_qps_at_slo=best.achieved_qps if best else None,
        recorded_max_qps=run.slo.max_qps if run.slo else None,
        sweep_notes=list(run.slo.notes) if run.slo else [],
        percentiles=whole_run_percentiles(run),
        sizing=size_run(
            run,
            points,
            target=target.value,
            slo_ms=slo.value,
            headroom=headroom.value,
            catalog=catalog,
            profile=run.profile,
        ),
        has_gpu=_has_gpu(run),
        host={k: (s.host or {}).get(k) for k in HOST_PEAKS},
        host_instances=list(((s.host or {}).get("instances") or {}).keys()),
        llm=llm_facts(
            run,
            limits=limits,
            target_qps=target.value,
            headroom=headroom.value,
            catalog=catalog,
        ),
    )


def analyse(runs: list[Run], options: Options) -> Facts:
    """All the report's facts, as dataclasses for the template."""
    limits, limits_source = resolve_limits(runs, options.thresholds_path)
    slo = resolve_slo(runs, options.slo_p99_ms, limits)
    headroom = resolve_headroom(options.headroom, limits, limits_source)
    target = resolve_target(options.target_qps, limits, limits_source)
    items = [
        run_facts(
            run,
            label,
            slo=slo,
            target=target,
            headroom=headroom,
            limits=limits,
            catalog=options.catalog,
        )
        for run, label in zip(runs, _labels(runs), strict=True)
    ]
    from inferops.report.profiles import compare_profiles

    # before Facts: a profile refused for its accuracy loses its sizing like an invalid run
    profiles = compare_profiles(runs, items, limits, limits_source, target.value)
    return Facts(
        profiles=profiles,
        slo=slo,
        headroom=headroom,
        target=target,
        limits=limits,
        limits_source=limits_source,
        catalog_source=options.catalog_source,
        runs=items,
        all_passed=all(i.passed for i in items),
        all_valid=all(i.valid for i in items),
        fleet_check=fleet_check(runs, items),
    )


def run_nodes(run: Run) -> int:
    """Inference nodes behind the run's target (``bench --nodes``; 1 when not recorded)."""
    load = run.manifest.load if run.manifest else None
    nodes = (load or {}).get("nodes") or 1
    return int(nodes) if isinstance(nodes, int) and nodes >= 1 else 1


def _workload(run: Run) -> tuple:
    load = (run.manifest.load if run.manifest else None) or {}
    return (run.summary.model or load.get("model"), run.summary.protocol)


def fleet_check(runs: list[Run], items: list[RunFacts]) -> list[FleetCheckRow]:
    """Each N-node run (N > 1) against N x the capacity of a sized one-node run of the same
    model and protocol, the prediction the sizing rests on.

    The baseline is a one-node run measured through the same endpoint (the balancer, with
    the other nodes out) when there is one, else the best one-node run. Measured straight
    at a node, a node carries more than it does behind nginx: the balancer's hop and its
    CPU are part of each request's latency there (benchmarks/fleet_scaling.py measured
    0.77x on capped test hosts), so N x a direct run over-predicts a fleet."""
    singles: dict[tuple, RunFacts] = {}
    for run, item in zip(runs, items, strict=True):
        if run_nodes(run) == 1 and not item.sizing.refused:
            for key in (_workload(run), (*_workload(run), run.summary.target)):
                best = singles.get(key)
                if best is None or item.sizing.max_qps_at_slo > best.sizing.max_qps_at_slo:
                    singles[key] = item
    rows = []
    for run, item in zip(runs, items, strict=True):
        nodes = run_nodes(run)
        base = singles.get((*_workload(run), run.summary.target)) or singles.get(_workload(run))
        if nodes == 1 or base is None:
            continue
        predicted = sizing.fleet_capacity(nodes, base.sizing.max_qps_at_slo)
        measured = None if item.sizing.refused else item.sizing.max_qps_at_slo
        error = None if measured is None else (measured - predicted) / predicted * 100
        rows.append(
            FleetCheckRow(
                label=item.label,
                nodes=nodes,
                baseline=base.label,
                baseline_qps=base.sizing.max_qps_at_slo,
                predicted_qps=predicted,
                measured_qps=measured,
                error_pct=error,
                within=sizing.within_fleet_tolerance(error),
            )
        )
    return sorted(rows, key=lambda r: (r.baseline, r.nodes))


def _has_gpu(run: Run) -> bool:
    ts = run.timeseries
    if ts is not None and ts["gpu_util_pct"].notna().any():
        return True
    return (run.summary.host or {}).get("gpu_util_pct_max") is not None
