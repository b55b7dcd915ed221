"""Render the report: facts + charts through ``inferops/templates/report.html.j2`` into one file.

The output is self-contained (inline CSS and SVG, no scripts, no external
URLs), so it opens offline and can be attached to a ticket. It is written
atomically: a reader never sees half a report, and a failed render leaves
no file behind.
"""

from __future__ import annotations

from pathlib import Path

from inferops import __version__
from inferops.atomicfile import atomic_write_text
from inferops.report import charts
from inferops.templating import TEMPLATES

TEMPLATE = "report.html.j2"


def run_timeseries(run):
    """The run's timeseries; for a sweep without one (or an empty one), its steps' series
    laid end to end."""
    if run.timeseries is not None and len(run.timeseries):
        return run.timeseries
    frames = [s.timeseries for s in run.steps if s.timeseries is not None]
    if not frames:
        return None
    import pandas as pd

    offset, parts = 0.0, []
    for frame in frames:
        measured = frame[frame["t_s"] >= 0].copy()
        measured["t_s"] = measured["t_s"] + offset
        offset = float(measured["t_s"].max() + 1) if len(measured) else offset
        parts.append(measured)
    return pd.concat(parts, ignore_index=True)


def add_charts(facts, runs: list) -> dict:
    """The template's context: the analysed ``facts`` (report.analysis.Facts), each run's
    charts drawn from its run folder, and the version."""
    slo = facts.slo.value
    for item, run in zip(facts.runs, runs, strict=True):
        item.curve_svg = charts.latency_curve([item], slo, title=item.label)
        frame = run_timeseries(run)
        if frame is not None and len(frame):
            # a sweep's frame is its steps end to end: the top-level bursts do not apply
            bursts = run.summary.error_bursts if frame is run.timeseries else None
            item.timeseries_svg, item.timeseries_note = charts.percentiles_over_time(
                frame, item.percentiles, bursts=bursts
            )
            if frame is not run.timeseries:
                item.timeseries_note += "; the sweep's steps one after another"
            item.resources_svg = charts.host_resources(frame, item.has_gpu)
            item.timeseries_columns = [c for c in ("p90_ms", "p999_ms") if c in frame]
        else:
            item.timeseries_svg = item.resources_svg = None
            item.timeseries_note = (
                "timeseries.csv has no rows"
                if run.timeseries is not None
                else "no timeseries.csv in this run folder"
            )
    for item in facts.runs:
        if item.llm is not None:
            item.llm.svg = charts.llm_curves(item.llm, title=item.label)
    sized = [i for i in facts.runs if not i.sizing.refused]
    context = {f: getattr(facts, f) for f in facts.__dataclass_fields__}
    context["overlay_svg"] = (
        charts.latency_curve(facts.runs, slo, title="all runs") if len(facts.runs) > 1 else None
    )
    context["nodes_svg"] = charts.nodes_vs_target(sized) if sized else None
    context["llm_runs"] = facts.llm_runs
    context["version"] = __version__
    return context


def render_html(context: dict, template_dir: Path = TEMPLATES) -> str:
    from inferops.templating import environment

    return environment(template_dir, num=_num).get_template(TEMPLATE).render(**context)


def _num(value, digits: int = 1, unit: str = "") -> str:
    """Format a number for people: thousands separators, '—' for missing, '∞' for inf."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value == float("inf"):
        return "∞"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip() if unit else text


def write_html(facts, runs: list, out: str | Path) -> Path:
    """Draw the charts, render the template and write ``out`` atomically; return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render_html(add_charts(facts, runs)))
    return out
