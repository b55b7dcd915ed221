"""The trend report: each metric over time per scenario/profile, in one HTML file.

Self-contained (inline CSS and SVG; no scripts, no external URLs). For each
series (scenario × profile) and each of its headline metrics: the values of
every stored run in time order, invalid runs hollow, the baseline band
(baseline value ± the min effect: the range that never alarms), and the
E-divisive change points with their relative change. Below: the confirmed
regressions and improvements, each linking to its baseline, candidate and
rerun in the runs table, with what changed in the environment.

SVG is written directly (not through matplotlib) so a year of nightly runs
over ten scenarios renders in well under a second.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path

from inferops.history import attribution
from inferops.history.changepoints import change_points
from inferops.history.metrics import METRICS
from inferops.history.store import Store, StoredRun
from inferops.templating import TEMPLATES

TEMPLATE = "trend.html.j2"
#: runs listed per series in the runs table (plus every run a finding links to)
RECENT_RUNS = 30

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 760, 200, 64, 16, 14, 30


@dataclass
class Chart:
    metric: str
    label: str
    unit: str
    svg: str
    points: int
    change_points: list[dict] = field(default_factory=list)


@dataclass
class Series:
    scenario: str
    profile: str
    anchor: str
    runs: int
    baseline_id: int | None
    charts: list[Chart] = field(default_factory=list)


def _fmt(v: float, unit: str) -> str:
    if unit == "":
        return f"{100 * v:.2f}%"
    return f"{v:.3g}"


def _svg(
    runs: list[StoredRun],
    metric: str,
    baseline: StoredRun | None,
    min_effect: float,
    points_cp: list,
    flagged_ids: set[int],
) -> str:
    m = METRICS[metric]
    xs = list(range(len(runs)))
    ys = [r.metrics.get(metric) for r in runs]
    known = [y for y in ys if y is not None]
    base_v = baseline.metrics.get(metric) if baseline else None
    lo_candidates = known + ([base_v * (1 - min_effect)] if base_v is not None else [])
    hi_candidates = known + ([base_v * (1 + min_effect)] if base_v is not None else [])
    lo, hi = min(lo_candidates), max(hi_candidates)
    if hi == lo:  # a flat line (e.g. no errors at all): give it a sensible scale
        pad = abs(lo) * 0.1 or (0.001 if m.unit == "" else 1.0)
        lo, hi = lo - pad, hi + pad
    span = hi - lo
    lo, hi = lo - 0.08 * span, hi + 0.08 * span
    n = max(1, len(runs) - 1)

    def px(i: float) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (i / n if len(runs) > 1 else 0.5)

    def py(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}"'
        f' role="img" aria-label="{html.escape(m.label)} over time">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}"'
        ' fill="#fff" stroke="#ccc"/>',
    ]
    if base_v is not None:
        top, bottom = py(base_v * (1 + min_effect)), py(base_v * (1 - min_effect))
        parts.append(
            f'<rect class="band" x="{PAD_L}" y="{top:.1f}" width="{W - PAD_L - PAD_R}"'
            f' height="{bottom - top:.1f}" fill="#2e7d32" fill-opacity="0.12">'
            f"<title>baseline #{baseline.id}: {_fmt(base_v, m.unit)} {m.unit} "
            f"± {100 * min_effect:g} %</title></rect>"
        )
        parts.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{py(base_v):.1f}" y2="{py(base_v):.1f}"'
            ' stroke="#2e7d32" stroke-dasharray="4 3"/>'
        )
    for tick in (lo + 0.08 * span / 1.16, (lo + hi) / 2, hi - 0.08 * span / 1.16):
        parts.append(
            f'<text x="{PAD_L - 6}" y="{py(tick) + 4:.1f}" font-size="11" text-anchor="end"'
            f' fill="#555">{_fmt(tick, m.unit)}</text>'
        )
    for cp in points_cp:
        x = px(cp["position"] - 0.5)
        parts.append(
            f'<line class="cp" x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{H - PAD_B}"'
            f' stroke="#c62828" stroke-width="1.5" stroke-dasharray="5 3">'
            f"<title>change point before run #{cp['run_id']}: {100 * cp['change']:+.1f} %"
            f" (p={cp['p_value']:.2g})</title></line>"
        )
        parts.append(
            f'<text x="{x + 3:.1f}" y="{PAD_T + 11}" font-size="11" fill="#c62828">'
            f"{100 * cp['change']:+.1f}%</text>"
        )
    path = []
    for i, y in zip(xs, ys, strict=True):
        if y is None:
            continue
        path.append(f"{'M' if not path else 'L'}{px(i):.1f},{py(y):.1f}")
    if path:
        parts.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="#1565c0" stroke-width="1.2"/>'
        )
    small = len(runs) > 120  # a year of nights: dots would merge into a bar
    for i, (run, y) in enumerate(zip(runs, ys, strict=True)):
        if y is None:
            continue
        color = "#c62828" if run.id in flagged_ids else "#1565c0"
        fill = color if run.valid else "#fff"
        r = 1.6 if small and run.id not in flagged_ids else 3.2
        parts.append(
            f'<circle cx="{px(i):.1f}" cy="{py(y):.1f}" r="{r}" fill="{fill}" stroke="{color}">'
            f"<title>#{run.id} {html.escape(run.started_at)}: {_fmt(y, m.unit)} {m.unit}"
            f"{'' if run.valid else ' (invalid)'}</title></circle>"
        )
    first, last = runs[0].started_at[:10], runs[-1].started_at[:10]
    parts.append(
        f'<text x="{PAD_L}" y="{H - 8}" font-size="11" fill="#555">{html.escape(first)}</text>'
    )
    parts.append(
        f'<text x="{W - PAD_R}" y="{H - 8}" font-size="11" fill="#555" text-anchor="end">'
        f"{html.escape(last)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _series_metrics(runs: list[StoredRun]) -> list[str]:
    sweep = any(r.metrics.get("max_qps") is not None for r in runs)
    names = ["max_qps", "error_rate"] if sweep else [
        "latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "error_rate",
    ]  # fmt: skip
    names += [n for n in ("ttft_p99_ms", "tpot_p99_ms") if any(r.metrics.get(n) for r in runs)]
    return [n for n in names if any(r.metrics.get(n) is not None for r in runs)]


def build(store: Store, *, min_effect: float = 0.05, changepoint_pvalue: float = 0.001) -> dict:
    """Everything the template needs, read from ``store``."""
    all_runs = store.runs()
    baselines = store.baselines()
    findings = store.findings()
    flagged = {f["candidate_run_id"] for f in findings} | {
        f["rerun_run_id"] for f in findings if f["rerun_run_id"]
    }
    by_series: dict[tuple[str, str], list[StoredRun]] = {}
    for run in all_runs:
        by_series.setdefault((run.scenario, run.profile), []).append(run)
    by_id = {r.id: r for r in all_runs}
    series_out = []
    listed: set[int] = set()
    for index, ((scenario, profile), runs) in enumerate(sorted(by_series.items())):
        baseline_id = baselines.get((scenario, profile))
        baseline = by_id.get(baseline_id) if baseline_id else None
        s = Series(scenario, profile, f"series-{index}", len(runs), baseline_id)
        valid = [r for r in runs if r.valid]
        for metric in _series_metrics(runs):
            positions = [
                i for i, r in enumerate(runs) if r.valid and r.metrics.get(metric) is not None
            ]
            values = [runs[i].metrics[metric] for i in positions]
            cps = []
            for cp in change_points(
                values, max_pvalue=changepoint_pvalue, min_magnitude=min_effect
            ):
                at, before = runs[positions[cp.index]], runs[positions[cp.index - 1]]
                cps.append(
                    {
                        "position": positions[cp.index],
                        "run_id": at.id,
                        "started_at": at.started_at,
                        "change": cp.change,
                        "p_value": cp.p_value,
                        "before_id": before.id,
                        "environment": "",  # filled below (needs manifests)
                    }
                )
            s.charts.append(
                Chart(
                    metric,
                    METRICS[metric].label,
                    METRICS[metric].unit,
                    _svg(runs, metric, baseline, min_effect, cps, flagged),
                    len(values),
                    cps,
                )
            )
        for chart in s.charts:
            for cp in chart.change_points:
                cp["environment"] = attribution.describe(
                    attribution.diff(
                        store.run_data(cp["before_id"]).manifest,
                        store.run_data(cp["run_id"]).manifest,
                    )
                )
        listed.update(r.id for r in valid[-RECENT_RUNS:])
        listed.update(r.id for r in runs[-RECENT_RUNS:])
        if baseline_id:
            listed.add(baseline_id)
        series_out.append(s)
    for f in findings:
        listed.update(
            x for x in (f["baseline_run_id"], f["candidate_run_id"], f["rerun_run_id"]) if x
        )
        f["metric_label"] = METRICS[f["metric"]].label if f["metric"] in METRICS else f["metric"]
        f["environment"] = attribution.describe(f["attribution"])
    table = [by_id[i] for i in sorted(listed) if i in by_id]
    return {
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "store": store.location,
        "total_runs": len(all_runs),
        "series": series_out,
        "findings": findings,
        "runs": table,
        "min_effect": min_effect,
        "anchors": {(s.scenario, s.profile): s.anchor for s in series_out},
    }


def render(context: dict, template_dir: Path = TEMPLATES) -> str:
    from inferops.templating import environment

    env = environment(template_dir, pct=lambda v: "-" if v is None else f"{100 * v:+.1f} %")
    return env.get_template(TEMPLATE).render(**context)


def write_report(store: Store, out: str | Path, **kwargs) -> Path:
    """Render the trend report of ``store`` to ``out`` atomically; return the path."""
    from inferops.history.runsource import atomic_write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(build(store, **kwargs)))
    return out
