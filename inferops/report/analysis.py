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
from inferops.report import sizing
from inferops.report.catalog import Hardware, for_profile
from inferops.report.runs import Run

#: a run whose generator sent more than this share of requests late was the bottleneck
LATE_SENDS_LIMIT_PCT = 1.0
GENERATOR_CPU_LIMIT_PCT = 90.0
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


@dataclass
class Setting:
    """A value the report used and where it came from (shown to the reader)."""

    value: float
    source: str


def _fmt(x: float) -> str:
    return f"{x:g}"


def resolve_slo(runs: list[Run], option: float | None, limits: dict) -> Setting:
    """One SLO per report: runs swept at different SLOs are an error (exit 2)."""
    swept = {}
    for run in runs:
        if run.slo_p99_ms is not None:
            swept.setdefault(run.slo_p99_ms, []).append(str(run.path))
    if len(swept) > 1:
        detail = "; ".join(f"{_fmt(v)} ms: {', '.join(p)}" for v, p in sorted(swept.items()))
        raise UsageError(
            f"runs were swept against different SLOs ({detail}); "
            "report runs with the same SLO together"
        )
    if option is not None:
        if not (option > 0 and math.isfinite(option)):
            raise UsageError(f"--slo-p99-ms must be a positive number, got {option!r}")
        return Setting(float(option), "--slo-p99-ms")
    if swept:
        return Setting(next(iter(swept)), "the sweep's slo.p99_ms")
    if "p99_latency_ms" in limits:
        return Setting(limits["p99_latency_ms"], "thresholds p99_latency_ms")
    raise UsageError(
        "no SLO: pass --slo-p99-ms (the runs are not sweeps and the "
        "thresholds have no p99_latency_ms)"
    )


def resolve_limits(runs: list[Run], path: str | Path | None) -> tuple[dict, str]:
    """Thresholds for headroom/target: --thresholds, else the runs' manifest, else defaults."""
    if path is not None:
        return thresholds_mod.load(path), str(path)
    for run in runs:
        recorded = (run.manifest or {}).get("thresholds")
        if isinstance(recorded, dict) and recorded:
            source = f"{run.path / 'manifest.json'} thresholds"
            return thresholds_mod.validate(recorded, source=source), source
    return dict(thresholds_mod.DEFAULTS), "built-in defaults"


def resolve_headroom(option: float | None, limits: dict, limits_source: str) -> Setting:
    if option is not None:
        if not (0 <= option < 1):
            raise UsageError(f"--headroom must be in [0, 1), got {option!r}")
        return Setting(float(option), "--headroom")
    if "max_cpu_percent" in limits:
        cpu = limits["max_cpu_percent"]
        return Setting(
            round(1 - cpu / 100, 6), f"1 - max_cpu_percent/100 ({_fmt(cpu)} % in {limits_source})"
        )
    return Setting(DEFAULT_HEADROOM, "default (no max_cpu_percent threshold)")


def resolve_target(option: float | None, limits: dict, limits_source: str) -> Setting:
    if option is not None:
        if not (option > 0 and math.isfinite(option)):
            raise UsageError(f"--target-qps must be a positive number, got {option!r}")
        return Setting(float(option), "--target-qps")
    if limits.get("min_qps", 0) > 0:
        return Setting(limits["min_qps"], f"min_qps in {limits_source}")
    raise UsageError("no target: pass --target-qps (the thresholds have no min_qps)")


def generator_verdict(summary: dict) -> dict:
    """Was the load generator the bottleneck? yes / no / unknown, with the evidence."""
    late = summary.get("late_sends_pct")
    cpu = summary.get("generator_cpu_pct_max")
    reasons = [r for r in summary.get("validity", []) if "generator" in str(r).lower()]
    evidence = []
    if late is not None:
        evidence.append(f"late sends {late:.2f} % (limit {LATE_SENDS_LIMIT_PCT:g} %)")
    if cpu is not None:
        evidence.append(f"generator CPU max {cpu:.0f} % (limit {GENERATOR_CPU_LIMIT_PCT:g} %)")
    if late is None and cpu is None and not reasons:
        return {"bottleneck": None, "evidence": "not recorded"}
    bottleneck = (
        bool(reasons) or (late or 0) > LATE_SENDS_LIMIT_PCT or (cpu or 0) > GENERATOR_CPU_LIMIT_PCT
    )
    # the validity reasons are listed beside the verdict already; name them only when
    # they are the sole evidence
    return {"bottleneck": bottleneck, "evidence": "; ".join(evidence or reasons)}


def curve(run: Run, slo_ms: float, max_error_rate: float | None = None) -> list[dict]:
    """Latency-vs-throughput points: the sweep steps, or the run itself as one point.

    A point meets the SLO when it is valid, its P99 is within ``slo_ms`` and its
    error rate within ``max_error_rate``. At the sweep's own SLO the sweep's
    per-step ``ok`` (which may also demand early-stopping proof) is used as is.
    """
    slo = run.slo
    if slo and slo["steps"]:
        points = [
            {
                "offered_qps": s["offered_qps"],
                "achieved_qps": _float(s["achieved_qps"]),
                "p99_ms": s["p99_ms"],
                "valid": s["valid"],
                "dir": s.get("dir"),
                "error_rate": s.get("error_rate"),
                "recorded_ok": s["ok"],
            }
            for s in slo["steps"]
        ]
    else:
        s = run.summary
        points = [
            {
                "offered_qps": s.get("offered_qps"),
                "achieved_qps": _float(s["achieved_qps"]),
                "p99_ms": s["latency_ms"]["p99"],
                "valid": run.valid,
                "dir": None,
                "error_rate": s.get("error_rate"),
                "recorded_ok": None,
            }
        ]
    for p in points:
        if p["achieved_qps"] is None:  # nothing completed (e.g. interrupted at once)
            p["valid"] = False
    same_slo = slo is not None and abs(float(slo["p99_ms"]) - slo_ms) < 1e-9
    for p in points:
        if same_slo:
            p["meets_slo"] = bool(p["recorded_ok"] and p["valid"])
            continue
        err_ok = (
            max_error_rate is None or p["error_rate"] is None or p["error_rate"] <= max_error_rate
        )
        p["meets_slo"] = bool(
            p["valid"] and p["p99_ms"] is not None and p["p99_ms"] <= slo_ms and err_ok
        )
    return points


def _float(value) -> float | None:
    return None if value is None else float(value)


def max_qps_at_slo(points: list[dict]) -> dict | None:
    """The highest achieved QPS among valid points meeting the SLO (None if none)."""
    ok = [p for p in points if p["meets_slo"] and p["achieved_qps"]]
    return max(ok, key=lambda p: p["achieved_qps"]) if ok else None


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
        lightest = min(candidates, key=lambda s: s.summary["achieved_qps"] or 0.0)
        rel = lightest.path.relative_to(run.path)
        return lightest.service_time.get_mean_value() / 1000.0, (
            f"mean of {rel}/service_time.hdr (lightest valid step, "
            f"{lightest.summary['achieved_qps'] or 0:.1f} req/s)"
        )
    if run.service_time is not None and run.service_time.get_total_count() > 0:
        return run.service_time.get_mean_value() / 1000.0, "mean of service_time.hdr"
    p50 = (run.summary.get("service_time_ms") or {}).get("p50")
    if p50:
        # only the median is known: assume exponential service, mean = median / ln 2
        return p50 / math.log(2), "service_time_ms.p50 / ln 2 (no service_time.hdr)"
    return None


def size_run(
    run: Run,
    points: list[dict],
    *,
    target: float,
    slo_ms: float,
    headroom: float,
    catalog: list[Hardware],
    profile: str,
) -> dict:
    """The sizing block for one run, or the reason it was refused."""
    if not run.valid:
        why = list(run.summary.get("validity") or [])
        if run.summary.get("partial"):
            why.insert(0, "the run is partial (interrupted)")
        return {"refused": "the run is invalid: " + ("; ".join(why) or "marked invalid")}
    best = max_qps_at_slo(points)
    if best is None:
        return {"refused": f"no valid step met the P99 SLO of {_fmt(slo_ms)} ms"}
    capacity = best["achieved_qps"]
    nodes = sizing.nodes_for_target(target, capacity, headroom)
    proposed = nodes + 1
    out: dict[str, Any] = {
        "refused": None,
        "max_qps_at_slo": capacity,
        "p99_at_max_ms": best["p99_ms"],
        "usable_qps_per_node": capacity * (1 - headroom),
        "nodes": nodes,
        "proposed": proposed,
        "single_rate": not (run.slo and run.slo["steps"]),
    }
    svc = service_time_estimate(run)
    peak = max(
        (p["achieved_qps"] for p in points if p["valid"] and p["achieved_qps"]), default=capacity
    )
    model = None
    if svc is not None and svc[0] > 0:
        model = sizing.fit_node_model(peak, svc[0])
        out["model"] = {
            "servers": model.servers,
            "service_ms": model.service_ms,
            "service_source": svc[1],
            "peak_qps": peak,
            "capacity_qps": model.capacity_qps,
            "p99_all_up_ms": model.p99_ms(target / proposed),
            "p99_one_down_ms": model.p99_ms(target / nodes),
            # the model against the measurement it was fitted from
            "p99_at_max_model_ms": model.p99_ms(capacity),
            "nodes_by_queueing": sizing.nodes_by_queueing(model, target, slo_ms),
        }
    else:
        out["model"] = None
    rows = []
    for mult in TARGET_MULTIPLES:
        t = target * mult
        n = sizing.nodes_for_target(t, capacity, headroom)
        row = {
            "target_qps": t,
            "nodes": n,
            "proposed": n + 1,
            "queueing_nodes": None,
            "p99_ms": None,
        }
        if model is not None:
            q = sizing.nodes_by_queueing(model, t, slo_ms)
            row["queueing_nodes"] = None if q is None else q + 1
            row["p99_ms"] = model.p99_ms(t / (n + 1))
        rows.append(row)
    out["by_target"] = rows
    costs = []
    for hw in for_profile(catalog, profile):
        monthly = sizing.monthly_cost_usd(proposed, hw.hourly_usd)
        costs.append(
            {
                "hardware": hw.name,
                "cpu": hw.cpu,
                "gpu": hw.gpu or "none",
                "hourly_usd": hw.hourly_usd,
                "note": hw.note,
                "nodes": proposed,
                "monthly_usd": monthly,
                "per_million_usd": sizing.cost_per_million_usd(monthly, target),
                "energy_kwh": sizing.monthly_energy_kwh(proposed, hw.power_w),
            }
        )
    out["costs"] = costs
    return out


def _labels(runs: list[Run]) -> list[str]:
    counts = Counter(r.profile for r in runs)
    return [r.profile if counts[r.profile] == 1 else f"{r.profile} ({r.path.name})" for r in runs]


def analyse(runs: list[Run], options: Options) -> dict:
    """All the report's facts, as plain data for the template."""
    limits, limits_source = resolve_limits(runs, options.thresholds_path)
    slo = resolve_slo(runs, options.slo_p99_ms, limits)
    headroom = resolve_headroom(options.headroom, limits, limits_source)
    target = resolve_target(options.target_qps, limits, limits_source)
    items = []
    for run, label in zip(runs, _labels(runs), strict=True):
        s = run.summary
        points = curve(run, slo.value, limits.get("max_error_rate"))
        best = max_qps_at_slo(points)
        recorded = (run.slo or {}).get("max_qps")
        items.append(
            {
                "label": label,
                "profile": run.profile,
                "path": str(run.path),
                "summary": s,
                "manifest": run.manifest,
                "notes": run.notes,
                "valid": run.valid,
                "passed": bool(s["passed"]),
                "validity": list(s.get("validity") or []),
                "partial": bool(s["partial"]),
                "thresholds": s["thresholds"],
                "generator": generator_verdict(s),
                "curve": points,
                "max_qps_at_slo": best["achieved_qps"] if best else None,
                "recorded_max_qps": recorded,
                "sweep_notes": list((run.slo or {}).get("notes") or []),
                "percentiles": whole_run_percentiles(run),
                "sizing": size_run(
                    run,
                    points,
                    target=target.value,
                    slo_ms=slo.value,
                    headroom=headroom.value,
                    catalog=options.catalog,
                    profile=run.profile,
                ),
                "has_gpu": _has_gpu(run),
            }
        )
    return {
        "slo": slo,
        "headroom": headroom,
        "target": target,
        "limits": limits,
        "limits_source": limits_source,
        "catalog_source": options.catalog_source,
        "runs": items,
        "all_passed": all(i["passed"] for i in items),
        "all_valid": all(i["valid"] for i in items),
        "target_multiples": TARGET_MULTIPLES,
    }


def _has_gpu(run: Run) -> bool:
    ts = run.timeseries
    if ts is not None and ts["gpu_util_pct"].notna().any():
        return True
    host = run.summary.get("host") or {}
    return host.get("gpu_util_pct_max") is not None
