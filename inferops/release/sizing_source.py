"""The one place the release tools read sizing from measured runs.

It asks the report's own analysis for the numbers, so the manifests and the
rollout use exactly the node counts and capacities the sizing report shows
for the same runs and options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inferops.exitcodes import InvalidMeasurement, UsageError


@dataclass(frozen=True)
class SizedRun:
    path: str
    profile: str
    model: str
    max_qps_at_slo: float
    headroom: float
    target_qps: float
    slo_p99_ms: float
    nodes: int
    proposed: int
    cpu_cores_peak: float | None
    memory_bytes_peak: float | None
    had_gpu: bool


def _peaks(host: dict, facts: dict) -> tuple[float | None, float | None]:
    """Host peaks in cores and bytes (system-wide on the measured host)."""
    cores = memory = None
    if host.get("cpu_pct_max") is not None and facts.get("cpu_count"):
        cores = host["cpu_pct_max"] / 100.0 * facts["cpu_count"]
    if host.get("memory_pct_max") is not None and facts.get("memory_bytes"):
        memory = host["memory_pct_max"] / 100.0 * facts["memory_bytes"]
    return cores, memory


def sized_runs(
    run_dirs: list[str | Path],
    *,
    target_qps: float | None,
    slo_p99_ms: float | None,
    headroom: float | None,
    thresholds: str | None,
) -> list[SizedRun]:
    """Every run the report could size; InvalidMeasurement if none could be."""
    from inferops.report.analysis import Options, analyse
    from inferops.report.runs import load_runs

    runs = load_runs([str(p) for p in run_dirs])
    facts = analyse(
        runs,
        Options(
            target_qps=target_qps,
            slo_p99_ms=slo_p99_ms,
            headroom=headroom,
            thresholds_path=thresholds,
        ),
    )
    out, refused = [], []
    for item in facts.runs:
        sizing = item.sizing
        if sizing.refused:
            refused.append(f"{item.path}: {sizing.refused}")
            continue
        manifest_host = (item.manifest.host if item.manifest else None) or {}
        cores, memory = _peaks(item.host, manifest_host)
        out.append(
            SizedRun(
                path=item.path,
                profile=item.profile,
                model=str(item.summary.model or "model"),
                max_qps_at_slo=sizing.max_qps_at_slo,
                headroom=facts.headroom.value,
                target_qps=facts.target.value,
                slo_p99_ms=facts.slo.value,
                nodes=sizing.nodes,
                proposed=sizing.proposed,
                cpu_cores_peak=cores,
                memory_bytes_peak=memory,
                had_gpu=bool(item.has_gpu),
            )
        )
    if not out:
        raise InvalidMeasurement("no run could be sized: " + "; ".join(refused))
    return out


def choose(runs: list[SizedRun], profile: str | None) -> SizedRun:
    """The named profile, else the one needing the fewest nodes."""
    if profile is not None:
        for run in runs:
            if run.profile == profile:
                return run
        names = ", ".join(sorted({r.profile for r in runs}))
        raise UsageError(f"--profile {profile!r} is not among the sized runs ({names})")
    return min(runs, key=lambda r: (r.proposed, -r.max_qps_at_slo))
