"""The history package's only door onto run folders (docs/run-format.md).

Everything in ``inferops.history`` reads (and, for synthetic histories,
writes) run folders through this module, so the day the run-folder reader and
writer move (``inferops.measure.runformat``) only the imports below change.

A run is loaded into a :class:`RunData`: the raw ``summary.json`` and
``manifest.json`` dicts, the HDR histograms as their base64 text (stored as-is
in the results store) and the per-second windows of ``timeseries.csv`` that
the per-window statistics use.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from inferops.exitcodes import UsageError

SUMMARY = "summary.json"
MANIFEST = "manifest.json"
TIMESERIES = "timeseries.csv"
#: histogram name in the store -> file in the run folder
HISTOGRAMS = {
    "latency": "latency.hdr",
    "service_time": "service_time.hdr",
    # LLM runs (when the run format records them): per-request TTFT and TPOT
    "ttft": "ttft.hdr",
    "tpot": "tpot.hdr",
}
#: timeseries.csv columns kept as per-window samples
WINDOW_COLUMNS = ("p50_ms", "p99_ms", "achieved_qps", "errors")


@dataclass
class RunData:
    """One run as the history package sees it."""

    summary: dict
    manifest: dict
    histograms: dict[str, str] = field(default_factory=dict)  # name -> base64 HDR text
    windows: dict[str, list[float | None]] = field(default_factory=dict)
    source: str | None = None  # the folder it was read from

    @property
    def label(self) -> str:
        return self.source or "run"


def load_run(path: str | Path) -> RunData:
    """Read a finished run folder; :class:`UsageError` naming the path when it is not one."""
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a run folder (no such directory)")
    summary = _read_json(folder / SUMMARY, required=True)
    manifest = _read_json(folder / MANIFEST, required=False) or {}
    if summary.get("schema") not in (1, None):
        raise UsageError(f"{folder / SUMMARY}: unsupported schema {summary.get('schema')!r}")
    histograms = {}
    for name, filename in HISTOGRAMS.items():
        hdr = folder / filename
        if hdr.exists():
            text = hdr.read_text(encoding="ascii", errors="strict").strip()
            try:
                decode_hdr(text)
            except Exception as exc:
                raise UsageError(f"{hdr}: not a valid HDR histogram ({exc})") from None
            histograms[name] = text
    return RunData(
        summary=summary,
        manifest=manifest,
        histograms=histograms,
        windows=_read_windows(folder / TIMESERIES),
        source=str(folder),
    )


def _read_json(path: Path, *, required: bool) -> dict | None:
    if not path.exists():
        if required:
            raise UsageError(f"{path.parent}: not a finished run (no {path.name})")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data


def _read_windows(path: Path) -> dict[str, list[float | None]]:
    """Per-second samples of the measured window (rows with ``t_s >= 0``)."""
    if not path.exists():
        return {}
    out: dict[str, list[float | None]] = {name: [] for name in WINDOW_COLUMNS}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            t = _number(row.get("t_s"))
            if t is None or t < 0:
                continue  # warm-up rows
            for name in WINDOW_COLUMNS:
                out[name].append(_number(row.get(name)))
    return out


def _number(text: str | None) -> float | None:
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# -- HDR histograms (the recorder's format) ---------------------------------
def decode_hdr(text: str | bytes):
    """Decode the base64 compressed HdrHistogram encoding the recorder writes."""
    from hdrh.histogram import HdrHistogram

    if isinstance(text, str):
        text = text.encode("ascii")
    return HdrHistogram.decode(text.strip())


def new_histogram():
    """An empty histogram with the recorder's range and precision (microseconds)."""
    from inferops.measure.recorder import new_histogram as recorder_histogram

    return recorder_histogram()


# -- writing (synthetic histories, tests, benchmarks) -------------------------
def write_run(
    path: str | Path,
    *,
    summary: dict,
    manifest: dict,
    histograms: dict | None = None,
    timeseries: list[dict] | None = None,
) -> Path:
    """Write a run folder with the real writer (atomic files, summary last)."""
    from inferops.measure.runfolder import RunFolder

    run = RunFolder(path, overwrite=True)
    run.write_json(MANIFEST, manifest)
    for name, hist in (histograms or {}).items():
        run.write_hdr(HISTOGRAMS[name], hist)
    if timeseries is not None:
        run.write_timeseries(timeseries)
    run.finish(dict(summary), partial=bool(summary.get("partial", False)))
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file atomically with the run-folder writer's helper (temp, fsync, rename)."""
    from inferops.atomicfile import atomic_write_text as write

    write(path, text)
