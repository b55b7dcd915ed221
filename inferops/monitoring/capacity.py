"""Measured capacity: the max QPS at the SLO, read from an ``inferops bench --sweep`` run folder.

This is the one place this package reads a run folder (``summary.json`` and
``manifest.json``, see docs/run-format.md), so it can follow the run-format
reader wherever that lives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from inferops.exitcodes import InvalidMeasurement, UsageError


@dataclass(frozen=True)
class Capacity:
    run: str  #: the run folder as given
    profile: str  #: manifest.json "profile", else the folder name (as the report groups runs)
    model: str | None
    max_qps: float  #: highest offered rate whose P99 met the SLO, req/s
    slo_p99_ms: float
    started_at: str | None


def read_capacity(run_dir: str | Path) -> Capacity:
    """The measured capacity of one sweep; exit 2 for a folder that is not a sweep, 3 for a
    sweep that did not establish a capacity (partial, invalid, or no step met the SLO)."""
    path = Path(run_dir)
    summary = _json(path / "summary.json", f"{run_dir}: not a run folder (no summary.json)")
    slo = summary.get("slo")
    if not isinstance(slo, dict):
        raise UsageError(f"{run_dir}: not an SLO sweep (run `inferops bench --sweep`)")
    if summary.get("partial"):
        raise InvalidMeasurement(f"{run_dir}: the sweep is partial; no capacity to alert on")
    max_qps = slo.get("max_qps")
    if not isinstance(max_qps, (int, float)) or isinstance(max_qps, bool) or max_qps <= 0:
        raise InvalidMeasurement(f"{run_dir}: no valid step met the SLO (slo.max_qps is null)")
    if summary.get("valid") is False:
        raise InvalidMeasurement(f"{run_dir}: the step at max_qps is not valid; re-run the sweep")
    manifest_path = path / "manifest.json"
    manifest = _json(manifest_path, "") if manifest_path.is_file() else {}
    profile = manifest.get("profile") or path.resolve().name
    return Capacity(
        run=str(run_dir),
        profile=str(profile),
        model=summary.get("model"),
        max_qps=float(max_qps),
        slo_p99_ms=float(slo.get("p99_ms") or 0.0),
        started_at=summary.get("started_at"),
    )


def _json(path: Path, missing: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(missing) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data
