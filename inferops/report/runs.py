"""Read and validate run folders (the contract in ``docs/run-format.md``).

A run folder is what ``inferops bench --out DIR`` writes. This module is the
report's only reader of it: anything the report cannot trust (a missing folder,
no ``summary.json``, a truncated file, a wrong schema, a corrupt histogram)
raises :class:`~inferops.exitcodes.UsageError` naming the path and the problem,
so a bad folder fails loudly instead of rendering a misleading page.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferops.exitcodes import UsageError

SCHEMA = 1

#: Columns every ``timeseries.csv`` must have (others, e.g. per-core CPU, may follow).
TIMESERIES_COLUMNS = (
    "t_s,offered_qps,achieved_qps,p50_ms,p99_ms,errors,cpu_pct,mem_pct,net_rx_bytes_s,"
    "net_tx_bytes_s,disk_read_bytes_s,disk_write_bytes_s,gpu_util_pct,gpu_mem_pct,"
    "gpu_power_w,gpu_temp_c"
).split(",")

_NUMBER = (int, float)
_NUMBER_OR_NULL = (int, float, type(None))

#: summary.json keys the report reads, with the types it accepts. Other keys are
#: allowed (the format may grow) and ignored.
_SUMMARY_TYPES: dict[str, tuple[type, ...]] = {
    "schema": (int,),
    "partial": (bool,),
    "mode": (str,),
    "requests": (int,),
    "failures": (int,),
    # null when nothing was measured (e.g. target unreachable): still a run to show
    "error_rate": _NUMBER_OR_NULL,
    "achieved_qps": _NUMBER_OR_NULL,
    "latency_ms": (dict,),
    "valid": (bool,),
    "validity": (list,),
    "thresholds": (list,),
    "passed": (bool,),
}
_SUMMARY_OPTIONAL: dict[str, tuple[type, ...]] = {
    "offered_qps": _NUMBER_OR_NULL,
    "duration_s": _NUMBER_OR_NULL,
    "service_time_ms": (dict, type(None)),
    "late_sends_pct": _NUMBER_OR_NULL,
    "generator_cpu_pct_max": _NUMBER_OR_NULL,
    "host": (dict, type(None)),
    "slo": (dict, type(None)),
    "model": (str, type(None)),
    "target": (str, type(None)),
    "protocol": (str, type(None)),
    "started_at": (str, type(None)),
}
_STEP_TYPES: dict[str, tuple[type, ...]] = {
    "offered_qps": _NUMBER_OR_NULL,
    "achieved_qps": _NUMBER_OR_NULL,
    "p99_ms": _NUMBER_OR_NULL,
    "valid": (bool,),
    "ok": (bool,),
}


@dataclass
class Run:
    """One validated run folder. Histograms are ``HdrHistogram`` objects (microseconds)."""

    path: Path
    summary: dict[str, Any]
    manifest: dict[str, Any] | None
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
        label = (self.manifest or {}).get("profile")
        return str(label) if label else self.path.name

    @property
    def slo(self) -> dict | None:
        return self.summary.get("slo")

    @property
    def slo_p99_ms(self) -> float | None:
        slo = self.slo
        return float(slo["p99_ms"]) if slo else None

    @property
    def valid(self) -> bool:
        return bool(self.summary["valid"]) and not self.summary["partial"]


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
    summary = _read_json(summary_path)
    _validate_summary(summary, summary_path)

    notes: list[str] = []
    manifest_path = path / "manifest.json"
    manifest = None
    if manifest_path.is_file():
        manifest = _read_json(manifest_path)
        if not isinstance(manifest, dict):
            raise UsageError(f"{manifest_path}: expected a JSON object")
    else:
        notes.append("no manifest.json: environment unknown")

    timeseries = _read_timeseries(path / "timeseries.csv")
    if timeseries is None:
        notes.append("no timeseries.csv")
    latency = _read_hdr(path / "latency.hdr")
    service_time = _read_hdr(path / "service_time.hdr")
    if latency is None:
        notes.append("no latency.hdr")
    if service_time is None:
        notes.append("no service_time.hdr")

    steps: list[Run] = []
    for i, step in enumerate((summary.get("slo") or {}).get("steps", [])):
        rel = step.get("dir")
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


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        raise UsageError(f"{path}: empty file (truncated write?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} "
            f"({exc.msg}; truncated write?)"
        ) from None


def _check_type(value: Any, types: tuple[type, ...], where: str) -> None:
    # bool is an int subclass; never accept it for a number.
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise UsageError(f"{where}: expected {wanted}, got {value!r}")


def _validate_summary(summary: Any, path: Path) -> None:
    if not isinstance(summary, dict):
        raise UsageError(f"{path}: expected a JSON object")
    if "schema" not in summary:
        raise UsageError(f"{path}: no 'schema' key (not a run summary?)")
    if summary["schema"] != SCHEMA:
        raise UsageError(
            f"{path}: schema {summary['schema']!r} is not supported (this inferops reads "
            f"schema {SCHEMA})"
        )
    for key, types in _SUMMARY_TYPES.items():
        if key not in summary:
            raise UsageError(f"{path}: missing key {key!r}")
        _check_type(summary[key], types, f"{path}: {key}")
    for key, types in _SUMMARY_OPTIONAL.items():
        if key in summary:
            _check_type(summary[key], types, f"{path}: {key}")
    for block in ("latency_ms", "service_time_ms"):
        for name, value in (summary.get(block) or {}).items():
            _check_type(value, _NUMBER_OR_NULL, f"{path}: {block}.{name}")
    if "p99" not in summary["latency_ms"]:
        raise UsageError(f"{path}: latency_ms.p99 is missing")
    for i, item in enumerate(summary["thresholds"]):
        if not isinstance(item, dict) or "name" not in item or "ok" not in item:
            raise UsageError(f"{path}: thresholds[{i}] needs 'name' and 'ok'")
    slo = summary.get("slo")
    if slo is not None:
        for key in ("p99_ms", "steps"):
            if key not in slo:
                raise UsageError(f"{path}: slo.{key} is missing")
        _check_type(slo["p99_ms"], _NUMBER, f"{path}: slo.p99_ms")
        if slo["p99_ms"] <= 0:
            raise UsageError(f"{path}: slo.p99_ms must be positive, got {slo['p99_ms']!r}")
        _check_type(slo.get("max_qps"), _NUMBER_OR_NULL, f"{path}: slo.max_qps")
        _check_type(slo["steps"], (list,), f"{path}: slo.steps")
        for i, step in enumerate(slo["steps"]):
            if not isinstance(step, dict):
                raise UsageError(f"{path}: slo.steps[{i}]: expected an object")
            for key, types in _STEP_TYPES.items():
                if key not in step:
                    raise UsageError(f"{path}: slo.steps[{i}] is missing {key!r}")
                _check_type(step[key], types, f"{path}: slo.steps[{i}].{key}")


def _read_timeseries(path: Path):
    if not path.is_file():
        return None
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: empty file (truncated write?)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in TIMESERIES_COLUMNS if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: missing column(s): {', '.join(missing)}")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            numeric = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][numeric.isna() & frame[column].notna()]
            if len(bad):
                raise UsageError(
                    f"{path}: column {column!r} has a non-number {bad.iloc[0]!r} "
                    f"(row {bad.index[0] + 2})"
                )
            frame[column] = numeric
    return frame


def _read_hdr(path: Path):
    if not path.is_file():
        return None
    from hdrh.histogram import HdrHistogram

    data = path.read_bytes().strip()
    if not data:
        raise UsageError(f"{path}: empty file (truncated write?)")
    try:
        hist = HdrHistogram.decode(data)
    except Exception as exc:  # hdrh raises binascii/zlib/its own errors
        raise UsageError(f"{path}: not a valid HdrHistogram dump ({type(exc).__name__})") from None
    if hist is None:
        raise UsageError(f"{path}: not a valid HdrHistogram dump")
    return hist
