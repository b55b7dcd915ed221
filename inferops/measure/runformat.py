"""The run folder format (docs/run-format.md): declared once, read and written only here.

A run folder holds ``summary.json`` (the verdict, written last), ``manifest.json``
(where the result came from), ``timeseries.csv`` (one row a second) and HDR
histograms (``latency.hdr``, ``service_time.hdr``; an LLM run adds more, see
:data:`HISTOGRAMS`). This module declares the schema version, the file names,
the columns, and typed classes for the JSON files:

* :class:`Summary` (with :class:`SloResult` and :class:`SloStep` for sweeps),
* :class:`Manifest`.

``to_json()`` gives the dict written to disk; ``from_json(data, where)``
checks every field against its annotation and raises
:class:`~inferops.exitcodes.UsageError` naming the file and the field. Keys
this version does not know are kept in ``extra`` and written back, so the
format can grow. :class:`~inferops.measure.runfolder.RunFolder` writes through
these classes; :func:`read_summary`, :func:`read_manifest`,
:func:`read_timeseries` and :func:`read_hdr` are the readers every consumer
(the report, later the history store) uses.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from inferops.exitcodes import UsageError

#: the format version every file of a run folder carries
SCHEMA = 1

SUMMARY = "summary.json"
MANIFEST = "manifest.json"
TIMESERIES = "timeseries.csv"
STEPS_DIR = "steps"
#: a sweep's one-user probes while the target recovers (``settle/NN-K``: before step NN)
SETTLE_DIR = "settle"

#: HDR histograms a run records, by recorder name -> file. Every one is merged
#: losslessly across workers and written here; an LLM run adds "ttft"/"itl".
HISTOGRAMS: dict[str, str] = {
    "latency": "latency.hdr",
    "service": "service_time.hdr",
}
#: streamed LLM runs (protocol openai) add these, by LLMRecorder name -> file
LLM_HISTOGRAMS: dict[str, str] = {
    "ttft": "ttft.hdr",
    "itl": "itl.hdr",
    "tpot": "tpot.hdr",
}

#: Locust's own outputs, kept beside ours for people who read Locust's tables
LOCUST_FILES = (
    "locust.html",
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
)

#: the documented timeseries.csv columns, in order; others (per-core CPU...) follow
TIMESERIES_COLUMNS = (
    "t_s",
    "offered_qps",
    "achieved_qps",
    "p50_ms",
    "p99_ms",
    "errors",
    "cpu_pct",
    "mem_pct",
    "net_rx_bytes_s",
    "net_tx_bytes_s",
    "disk_read_bytes_s",
    "disk_write_bytes_s",
    "gpu_util_pct",
    "gpu_mem_pct",
    "gpu_power_w",
    "gpu_temp_c",
)


# --- typed JSON: each field checked against its annotation ---------------------------


def _accepted(hint: Any) -> tuple[type, ...]:
    """The JSON types a field annotation accepts (``float`` accepts ints too)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _accepted(arg))
    if hint is type(None):
        return (type(None),)
    if hint is float:
        return (int, float)
    if hint is Any:
        return (object,)
    if origin is not None:
        return (origin,)
    if dataclasses.is_dataclass(hint):
        return (dict,)
    return (hint,)


def _check(value: Any, types_: tuple[type, ...], where: str) -> None:
    # bool is an int subclass: never a number here
    ok = isinstance(value, types_) and not (isinstance(value, bool) and bool not in types_)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types_)
        raise UsageError(f"{where}: expected {wanted}, got {value!r}")


class _Record:
    """to_json/from_json for the dataclasses below, driven by their annotations."""

    #: keys written only when not None (so a plain run has no "slo" key)
    OMIT_NONE: ClassVar[tuple[str, ...]] = ()
    #: nested records: field name -> (class, is a list of them)
    NESTED: ClassVar[dict[str, tuple[type, bool]]] = {}

    extra: dict

    @classmethod
    def from_json(cls, data: Any, where: str):
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a JSON object")
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if f.name not in data:
                if required:
                    raise UsageError(f"{where}: missing key {f.name!r}")
                continue
            value = data[f.name]
            _check(value, _accepted(hints[f.name]), f"{where}: {f.name}")
            nested = cls.NESTED.get(f.name)
            if nested and value is not None:
                sub, many = nested
                value = (
                    [sub.from_json(v, f"{where}: {f.name}[{i}]") for i, v in enumerate(value)]
                    if many
                    else sub.from_json(value, f"{where}: {f.name}")
                )
            kwargs[f.name] = value
        names = {f.name for f in dataclasses.fields(cls)}
        record = cls(**kwargs, extra={k: v for k, v in data.items() if k not in names})
        record.check(where)
        return record

    def check(self, where: str) -> None:
        """Rules beyond types (overridden where a class has some)."""

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_NONE:
                continue
            if isinstance(value, _Record):
                value = value.to_json()
            elif isinstance(value, list):
                value = [v.to_json() if isinstance(v, _Record) else v for v in value]
            out[f.name] = value
        out.update(self.extra)
        return out


@dataclass(kw_only=True)
class SloStep(_Record):
    """One step of a sweep (``slo.steps[i]``): its rate, P99 and whether it met the SLO."""

    offered_qps: float | None
    achieved_qps: float | None
    p99_ms: float | None
    valid: bool
    ok: bool
    error_rate: float | None = None
    dir: str | None = None
    validity: list | None = None
    retried: bool | None = None
    # LLM sweeps (protocol openai): the knee's criteria and the step's token rate
    p99_ttft_ms: float | None = None
    p99_tpot_ms: float | None = None
    output_tokens_per_s: float | None = None
    # after an overloaded step: how long the target was let recover first, and whether it did
    settled_s: float | None = None
    recovered: bool | None = None
    extra: dict = field(default_factory=dict)

    OMIT_NONE: ClassVar[tuple[str, ...]] = (
        "validity",
        "retried",
        "settled_s",
        "recovered",
        "p99_ttft_ms",
        "p99_tpot_ms",
        "output_tokens_per_s",
    )


@dataclass(kw_only=True)
class SloResult(_Record):
    """The sweep's answer (``summary.slo``): the highest rate whose P99 met the bound.

    An LLM sweep (protocol openai) bounds P99 TTFT (``ttft_ms``) and/or P99
    TPOT (``tpot_ms``) instead; its ``p99_ms`` (E2E) is null unless given.
    """

    p99_ms: float | None
    steps: list
    max_qps: float | None = None
    precision: float | None = None
    converged: bool | None = None
    notes: list = field(default_factory=list)
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    extra: dict = field(default_factory=dict)

    OMIT_NONE: ClassVar[tuple[str, ...]] = ("ttft_ms", "tpot_ms")
    NESTED: ClassVar[dict[str, tuple[type, bool]]] = {"steps": (SloStep, True)}

    def check(self, where: str) -> None:
        bounds = {"p99_ms": self.p99_ms, "ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms}
        if all(v is None for v in bounds.values()):
            raise UsageError(f"{where}: slo has no bound (p99_ms, ttft_ms or tpot_ms)")
        for name, value in bounds.items():
            if value is not None and value <= 0:
                raise UsageError(f"{where}: slo.{name} must be positive, got {value!r}")


@dataclass(kw_only=True)
class Summary(_Record):
    """``summary.json``: what was measured and the verdict (written last)."""

    schema: int
    partial: bool
    mode: str  # open | closed | sweep
    requests: int
    failures: int
    error_rate: float | None
    achieved_qps: float | None
    latency_ms: dict
    valid: bool
    validity: list
    thresholds: list
    passed: bool
    target: str | None = None
    protocol: str | None = None
    model: str | None = None
    started_at: str | None = None
    duration_s: float | None = None
    warmup_s: float | None = None
    offered_qps: float | None = None
    service_time_ms: dict | None = None
    late_sends_pct: float | None = None
    late_tolerance_ms: float | None = None
    send_lag_ms: dict | None = None
    dropped: int | None = None
    generator_cpu_pct_max: float | None = None
    host: dict | None = None
    early_stopping: dict | None = None
    stability: dict | None = None
    workers: dict | None = None
    slo: SloResult | None = None
    llm: dict | None = None  # protocol openai: TTFT/ITL/TPOT, tokens, goodput
    #: when the errors happened: [{"start_s", "end_s", "errors"}] (only when some failed)
    error_bursts: list | None = None
    #: a run invalid by late sends alone that still proves a P99 breach (summary.py)
    breach_proven: dict | None = None
    extra: dict = field(default_factory=dict)

    OMIT_NONE: ClassVar[tuple[str, ...]] = (
        "workers", "slo", "llm", "error_bursts", "breach_proven",
    )  # fmt: skip
    NESTED: ClassVar[dict[str, tuple[type, bool]]] = {"slo": (SloResult, False)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Summary:
        if isinstance(data, dict):
            if "schema" not in data:
                raise UsageError(f"{where}: no 'schema' key (not a run summary?)")
            if data["schema"] != SCHEMA:
                raise UsageError(
                    f"{where}: schema {data['schema']!r} is not supported "
                    f"(this inferops reads schema {SCHEMA})"
                )
            slo = data.get("slo")
            if isinstance(slo, dict):
                for key in ("p99_ms", "steps"):
                    if key not in slo:
                        raise UsageError(f"{where}: slo.{key} is missing")
                for i, step in enumerate(slo.get("steps") or []):
                    for key in ("offered_qps", "achieved_qps", "p99_ms", "valid", "ok"):
                        if isinstance(step, dict) and key not in step:
                            raise UsageError(f"{where}: slo.steps[{i}] is missing {key!r}")
        return super().from_json(data, where)

    def check(self, where: str) -> None:
        for block in ("latency_ms", "service_time_ms", "send_lag_ms"):
            for name, value in (getattr(self, block) or {}).items():
                _check(value, (int, float, type(None)), f"{where}: {block}.{name}")
        if "p99" not in self.latency_ms:
            raise UsageError(f"{where}: latency_ms.p99 is missing")
        for i, item in enumerate(self.thresholds):
            if not isinstance(item, dict) or "name" not in item or "ok" not in item:
                raise UsageError(f"{where}: thresholds[{i}] needs 'name' and 'ok'")
        if self.breach_proven is not None:  # the report and the rollout show its reason
            _check(self.breach_proven.get("reason"), (str,), f"{where}: breach_proven.reason")

    @property
    def trusted(self) -> bool:
        """Valid and complete: the recorded verdict, never re-judged by a reader."""
        return self.valid and not self.partial


@dataclass(kw_only=True)
class Manifest(_Record):
    """``manifest.json``: the software, host, command and thresholds behind a result."""

    schema: int | None = None
    inferops_version: str | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    command: list = field(default_factory=list)
    python: str | None = None
    packages: dict = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    profile: str | None = None
    created_at: str | None = None
    load: dict | None = None
    extra: dict = field(default_factory=dict)

    OMIT_NONE: ClassVar[tuple[str, ...]] = ("load",)


# --- readers ------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    """A JSON file, or UsageError saying why it cannot be trusted (truncated, not UTF-8...)."""
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


def read_summary(folder: Path) -> Summary:
    path = Path(folder) / SUMMARY
    return Summary.from_json(read_json(path), str(path))


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest, or None when the folder has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    return Manifest.from_json(read_json(path), str(path))


def read_timeseries(folder: Path):
    """``timeseries.csv`` as a pandas DataFrame (None when absent); every cell a number."""
    path = Path(folder) / TIMESERIES
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


def read_hdr(path: str | Path):
    """An ``HdrHistogram`` (microseconds) from a ``.hdr`` file; None when the file is absent."""
    path = Path(path)
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


# --- writers' encodings (RunFolder writes them atomically) -----------------------------


def encode_hdr(histogram: Any) -> bytes:
    """A histogram in HdrHistogram's base64 compressed encoding, one line."""
    encoded = histogram.encode()
    if isinstance(encoded, str):
        encoded = encoded.encode("ascii")
    return encoded + b"\n"


def _natural_key(name: str) -> list:
    # cpu2_pct before cpu10_pct
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def timeseries_columns(rows: list[dict]) -> list[str]:
    """The documented columns in documented order, then any other key, sorted naturally."""
    extra = {k for row in rows for k in row if k not in TIMESERIES_COLUMNS}
    return list(TIMESERIES_COLUMNS) + sorted(extra, key=_natural_key)


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def encode_timeseries(rows: list[dict]) -> str:
    """``timeseries.csv`` text: a missing key, None and NaN become an empty cell."""
    columns = timeseries_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(col)) for col in columns])
    return buf.getvalue()
