"""Read and validate run folders (the contract in ``docs/run-format.md``).

A run folder is what ``inferops bench --out DIR`` writes. This module is the
report's only reader of it: anything the report cannot trust (a missing folder,
no ``summary.json``, a truncated file, a wrong schema, a corrupt histogram)
raises :class:`~inferops.exitcodes.UsageError` naming the path and the problem,
so a bad folder fails loudly instead of rendering a misleading page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferops.exitcodes import UsageError
from inferops.measure import runformat
from inferops.measure.runformat import HISTOGRAMS, Manifest, SloResult, Summary
from inferops.redact import redact_argv, redact_url


@dataclass
class Run:
    """One validated run folder. Histograms are ``HdrHistogram`` objects (microseconds)."""

    path: Path
    summary: Summary
    manifest: Manifest | None
    #: pandas DataFrame of timeseries.csv, or None when the folder has none
    timeseries: Any
    latency: Any  # HdrHistogram | None
    service_time: Any  # HdrHistogram | None
    steps: list[Run] = field(default_factory=list)
    #: things that are missing but not fatal, in words, shown in the report
    notes: list[str] = field(default_factory=list)

    @property
    def profile(self) -> str:
        """The label runs are grouped by: ``manifest.profile``, else the folder name."""
        label = self.manifest.profile if self.manifest else None
        return str(label) if label else self.path.name

    @property
    def slo(self) -> SloResult | None:
        return self.summary.slo

    @property
    def slo_p99_ms(self) -> float | None:
        return float(self.slo.p99_ms) if self.slo and self.slo.p99_ms is not None else None

    @property
    def valid(self) -> bool:
        """The recorded verdict (valid and complete); the report never re-judges it."""
        return self.summary.trusted


def load_run(path: str | Path) -> Run:
    """Read one run folder (and, for a sweep, its ``steps/NN`` folders)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"run folder not found: {path}")
    if not path.is_dir():
        raise UsageError(f"not a run folder (not a directory): {path}")
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise UsageError(
            f"{path}: no summary.json (not a run folder, or the run never finished writing)"
        )
    summary = runformat.read_summary(path)
    # a folder written before secrets were redacted must not leak them into the report
    summary.target = redact_url(summary.target)

    notes: list[str] = []
    manifest = runformat.read_manifest(path)
    if manifest is not None:
        manifest.command = redact_argv(manifest.command)
    if manifest is None:
        notes.append(f"no {runformat.MANIFEST}: environment unknown")
    timeseries = runformat.read_timeseries(path)
    if timeseries is None:
        notes.append(f"no {runformat.TIMESERIES}")
    latency = runformat.read_hdr(path / HISTOGRAMS["latency"])
    service_time = runformat.read_hdr(path / HISTOGRAMS["service"])
    for name, hist in ((HISTOGRAMS["latency"], latency), (HISTOGRAMS["service"], service_time)):
        if hist is None:
            notes.append(f"no {name}")

    steps: list[Run] = []
    for i, step in enumerate(summary.slo.steps if summary.slo else []):
        rel = step.dir
        if not rel:
            continue
        step_path = (path / rel).resolve()
        if path.resolve() not in step_path.parents:
            raise UsageError(f"{summary_path}: slo.steps[{i}].dir {rel!r} leaves the run folder")
        if not step_path.exists():
            raise UsageError(f"{summary_path}: slo.steps[{i}] names {rel}, which is missing")
        steps.append(load_run(path / rel))  # keep the caller's (maybe relative) form
    return Run(path, summary, manifest, timeseries, latency, service_time, steps, notes)


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Read several run folders; the first bad one raises UsageError."""
    if not paths:
        raise UsageError("no run folders given")
    return [load_run(p) for p in paths]
