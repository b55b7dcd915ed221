"""The report's charts, drawn with matplotlib and returned as inline SVG text.

Long time series are bucketed to at most ``MAX_POINTS`` points before
plotting (a 24 h run at 1 Hz is 86,400 rows; an SVG path that long is slow to
write and slower to open). Rates are averaged per bucket; latency percentiles
keep the bucket's maximum so spikes stay visible; errors are summed.
"""

from __future__ import annotations

import io
import re

import numpy as np

MAX_POINTS = 600
_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",  # keep text as text: smaller files, selectable labels
            "svg.hashsalt": "inferops",  # stable element ids between renders
            "font.size": 9,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )
    import matplotlib.pyplot as plt

    return plt


def to_svg(fig) -> str:
    """Serialise a figure to an inline ``<svg>`` element (no XML prolog), then close it."""
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    start = text.find("<svg")
    return re.sub(r"\s+$", "", text[start:])


def downsample(frame, max_points: int | None = None):
    """Bucket consecutive rows so at most ``max_points`` remain; return (frame, seconds/bucket)."""
    max_points = max_points or MAX_POINTS
    n = len(frame)
    if n <= max_points:
        return frame, 1
    size = -(-n // max_points)
    groups = np.arange(n) // size
    agg = {}
    for col in frame.columns:
        if col == "t_s":
            agg[col] = "first"
        elif col.endswith("_ms"):
            agg[col] = "max"
        elif col == "errors":
            agg[col] = "sum"
        else:
            agg[col] = "mean"
    out = frame.groupby(groups).agg(agg)
    if "errors" in out:
        # errors were summed over the bucket; turn back into per-second for the rate
        out["errors"] = out["errors"] / size
    return out.reset_index(drop=True), size


def latency_curve(series: list, slo_ms: float, *, title: str) -> str:
    """P99 against achieved QPS, one line per run, with the SLO and max QPS at SLO marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for i, item in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        # drawn left to right: sweep steps are stored in search order, not rate order
        pts = sorted(
            (p for p in item.curve if p.p99_ms is not None and p.achieved_qps is not None),
            key=lambda p: p.achieved_qps,
        )
        xs = [p.achieved_qps for p in pts]
        ys = [p.p99_ms for p in pts]
        ax.plot(xs, ys, "-", color=color, label=item.label)
        for p in pts:
            ax.plot(
                p.achieved_qps,
                p.p99_ms,
                "o" if p.valid else "x",
                color=color,
                markerfacecolor=color if p.meets_slo else "white",
            )
        best = item.max_qps_at_slo
        if best is not None:
            ax.axvline(best, color=color, linestyle=":", linewidth=1)
            ax.annotate(
                f"max at SLO: {best:.1f} req/s",
                (best, slo_ms),
                color=color,
                xytext=(4, 6 + 12 * i),
                textcoords="offset points",
                fontsize=8,
            )
    ax.axhline(slo_ms, color="black", linestyle="--", linewidth=1, label=f"SLO P99 {slo_ms:g} ms")
    ax.set_xlabel("achieved throughput (req/s)")
    ax.set_ylabel("P99 latency (ms)")
    ys_all = [p.p99_ms for s in series for p in s.curve if p.p99_ms and p.achieved_qps is not None]
    if ys_all and max(ys_all) / max(min(ys_all), 1e-9) > 30:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return to_svg(fig)


def percentiles_over_time(frame, whole: dict | None, bursts: list | None = None) -> tuple[str, str]:
    """Latency percentiles, error rate and offered vs achieved QPS over time; the run's
    error bursts (``summary.error_bursts``) shaded, with their error counts."""
    plt = _pyplot()
    if (frame["t_s"] >= 0).any():
        frame = frame[frame["t_s"] >= 0]  # warm-up rows (negative t_s) are not measured
    data, bucket = downsample(frame)
    t = data["t_s"].to_numpy()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True)
    drawn = []
    for col, label, color in [
        ("p50_ms", "p50", "#2ca02c"),
        ("p90_ms", "p90", "#1f77b4"),
        ("p99_ms", "p99", "#d62728"),
        ("p999_ms", "p99.9", "#9467bd"),
    ]:
        if col in data and data[col].notna().any():
            ax1.plot(t, data[col], color=color, label=f"{label} (per {bucket} s)")
            drawn.append(label)
    if whole:
        for key, label, color in [("p90", "p90", "#1f77b4"), ("p999", "p99.9", "#9467bd")]:
            if label not in drawn:
                ax1.axhline(
                    whole[key],
                    color=color,
                    linestyle="--",
                    linewidth=1,
                    label=f"{label} whole run (latency.hdr; not in timeseries)",
                )
    ax1.set_ylabel("latency (ms)")
    ax1.legend(loc="upper left", fontsize=7)
    ax2.plot(t, data["offered_qps"], color="#7f7f7f", linestyle="--", label="offered")
    ax2.plot(t, data["achieved_qps"], color="#1f77b4", label="achieved")
    ax2.set_ylabel("req/s")
    ax2.set_xlabel("seconds since start of measured window")
    ax3 = ax2.twinx()
    achieved = data["achieved_qps"].replace(0, np.nan)
    error_pct = (data["errors"] / achieved * 100).fillna(0)
    ax3.plot(t, error_pct, color="#d62728", linewidth=1, label="error rate %")
    ax3.set_ylabel("errors (%)")
    ax3.set_ylim(bottom=0, top=max(1.0, float(error_pct.max()) * 1.2))
    ax3.grid(False)
    for i, burst in enumerate(bursts or []):
        for ax in (ax1, ax2):
            ax.axvspan(burst["start_s"], burst["end_s"], color="#d62728", alpha=0.15, linewidth=0,
                       label="error burst" if i == 0 and ax is ax2 else None)  # fmt: skip
        ax1.annotate(
            f"{burst['errors']} errors",
            xy=(burst["start_s"], 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -10),
            textcoords="offset points",
            fontsize=7,
            color="#d62728",
        )
    lines = ax2.get_legend_handles_labels()
    extra = ax3.get_legend_handles_labels()
    ax2.legend(lines[0] + extra[0], lines[1] + extra[1], loc="lower right", fontsize=7)
    note = (
        f"{len(frame)} rows; plotted per {bucket} s bucket (rates: mean, latency: max)"
        if bucket > 1
        else f"{len(frame)} rows, one per second"
    )
    if bursts:
        note += "; errors: " + ", ".join(
            f"{b['errors']} at {b['start_s']:.0f}-{b['end_s']:.0f} s" for b in bursts
        )
    return to_svg(fig), note


def host_resources(frame, has_gpu: bool) -> str:
    """CPU and memory, plus GPU utilisation, memory and power when a GPU was present."""
    plt = _pyplot()
    if (frame["t_s"] >= 0).any():
        frame = frame[frame["t_s"] >= 0]
    data, bucket = downsample(frame)
    t = data["t_s"].to_numpy()
    rows = 2 if has_gpu else 1
    fig, axes = plt.subplots(rows, 1, figsize=(7.5, 2.8 * rows), sharex=True, squeeze=False)
    ax = axes[0][0]
    ax.plot(t, data["cpu_pct"], label="CPU %", color="#1f77b4")
    ax.plot(t, data["mem_pct"], label="memory %", color="#ff7f0e")
    ax.set_ylim(0, 100)
    ax.set_ylabel("host (%)")
    ax.legend(loc="upper left", fontsize=7)
    if has_gpu:
        g = axes[1][0]
        g.plot(t, data["gpu_util_pct"], label="GPU util %", color="#2ca02c")
        g.plot(t, data["gpu_mem_pct"], label="GPU memory %", color="#9467bd")
        g.set_ylim(0, 100)
        g.set_ylabel("GPU (%)")
        p = g.twinx()
        p.plot(t, data["gpu_power_w"], label="GPU power W", color="#d62728", linewidth=1)
        p.set_ylabel("power (W)")
        p.grid(False)
        h1, l1 = g.get_legend_handles_labels()
        h2, l2 = p.get_legend_handles_labels()
        g.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=7)
    axes[-1][0].set_xlabel("seconds since start of measured window")
    return to_svg(fig)


def nodes_vs_target(items: list) -> str:
    """Proposed nodes (capacity rule, N+1) and Erlang C nodes over a range of targets."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for i, item in enumerate(items):
        rows = item.sizing.by_target
        if not rows:
            continue
        color = _PALETTE[i % len(_PALETTE)]
        xs = [r.target_qps for r in rows]
        ax.plot(
            xs,
            [r.proposed for r in rows],
            "o-",
            color=color,
            label=f"{item.label}: capacity rule (N+1)",
        )
        q = [(r.target_qps, r.queueing_nodes) for r in rows if r.queueing_nodes]
        if q:
            ax.plot(
                *zip(*q, strict=True),
                "s--",
                color=color,
                markerfacecolor="white",
                label=f"{item.label}: Erlang C (N+1)",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("target throughput (req/s)")
    ax.set_ylabel("nodes")
    ax.legend(loc="upper left", fontsize=7)
    return to_svg(fig)


def llm_curves(llm, *, title: str) -> str:
    """P99 TTFT, P99 TPOT and output tokens/s against offered rate, with the knee marked.

    ``llm`` is a report.llm.LlmFacts. Filled markers met the SLOs (recorded verdict),
    crosses were invalid steps.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.2))
    pts = sorted((p for p in llm.points if p.offered_qps is not None), key=lambda p: p.offered_qps)
    panels = (
        ("p99_ttft_ms", "P99 TTFT (ms)", llm.slo_ttft_ms),
        ("p99_tpot_ms", "P99 TPOT (ms)", llm.slo_tpot_ms),
        ("output_tokens_per_s", "output tokens/s", None),
    )
    for ax, (attr, label, slo) in zip(axes, panels, strict=True):
        shown = [p for p in pts if getattr(p, attr) is not None]
        ax.plot([p.offered_qps for p in shown], [getattr(p, attr) for p in shown], "-",
                color=_PALETTE[0])  # fmt: skip
        for p in shown:
            ax.plot(
                p.offered_qps,
                getattr(p, attr),
                "o" if p.valid else "x",
                color=_PALETTE[0],
                markerfacecolor=_PALETTE[0] if p.ok else "white",
            )
        if slo is not None:
            ax.axhline(slo, color="black", linestyle="--", linewidth=1, label=f"SLO {slo:g} ms")
            ax.legend(loc="upper left", fontsize=8)
        if llm.knee_qps is not None:
            ax.axvline(llm.knee_qps, color=_PALETTE[1], linestyle=":", linewidth=1)
            ax.annotate(f"knee {llm.knee_qps:.1f} req/s", (llm.knee_qps, 0), color=_PALETTE[1],
                        xycoords=("data", "axes fraction"), xytext=(3, 6),
                        textcoords="offset points", fontsize=8)  # fmt: skip
        ax.set_xlabel("offered rate (req/s)")
        ax.set_ylabel(label)
    fig.suptitle(title)
    return to_svg(fig)
