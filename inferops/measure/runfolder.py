"""Writing a run folder (docs/run-format.md), one atomic file at a time.

Every file lands with write-to-temp, ``fsync``, ``os.replace``, ``fsync`` of the
folder: a reader (or a crash) sees either the old file or the new one, never
half of one. ``summary.json`` is written last by :meth:`RunFolder.finish`, so a
folder that has it is a complete run.

>>> run = RunFolder("runs/cnn")                    # doctest: +SKIP
>>> run.write_json("manifest.json", manifest)      # doctest: +SKIP
>>> run.write_timeseries(rows)                     # doctest: +SKIP
>>> run.write_hdr("latency.hdr", histogram)        # doctest: +SKIP
>>> run.finish(summary)                            # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import re
import tempfile
from typing import Any

from inferops.exitcodes import UsageError

SCHEMA = 1
SUMMARY = "summary.json"
TIMESERIES = "timeseries.csv"

#: the documented timeseries.csv columns, in order (docs/run-format.md)
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

# mkstemp creates 0600 files; results should get the usual umask-derived mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically.

    The bytes go to a hidden temporary file in the same folder, which is
    fsynced and then renamed over ``path``; the folder is fsynced so the
    rename survives a power cut. On any error the temporary file is removed
    and ``path`` keeps its old content.
    """
    path = pathlib.Path(path)
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # BaseException too: a Ctrl-C mid-write must not leave temp files behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically.

    NaN and ±infinity become ``null`` (Python's ``json`` would write ``NaN``,
    which is not JSON); numpy scalars and arrays become plain numbers and
    lists; tuples become lists. Anything else not serialisable raises
    ``TypeError`` before the file is touched.
    """
    text = json.dumps(_json_safe(obj), indent=2, allow_nan=False, sort_keys=False)
    atomic_write_text(path, text + "\n")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array, without importing numpy
        return _json_safe(obj.tolist())
    return obj  # json.dumps raises TypeError naming the type


def _fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some filesystems do not allow opening folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _natural_key(name: str) -> list:
    # cpu2_pct before cpu10_pct
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def timeseries_columns(rows: list[dict]) -> list[str]:
    """The header :meth:`RunFolder.write_timeseries` uses for ``rows``.

    The documented columns always come first, in documented order; any other
    key found in any row follows, sorted naturally (``cpu2_pct`` before
    ``cpu10_pct``).
    """
    extra = {k for row in rows for k in row if k not in TIMESERIES_COLUMNS}
    return list(TIMESERIES_COLUMNS) + sorted(extra, key=_natural_key)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


class RunFolder:
    """One run folder being written.

    ``RunFolder(path)`` creates the folder (and its parents). It raises
    :class:`~inferops.exitcodes.UsageError` when ``path`` is a file, cannot be
    created or written, or already holds a finished run (a ``summary.json``)
    and ``overwrite`` is false. With ``overwrite=True`` the old
    ``summary.json`` is removed first, so until :meth:`finish` the folder is
    never mistaken for a finished run.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False):
        self.path = pathlib.Path(path)
        self.overwrite = overwrite
        self.finished = False
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"run folder {self.path} is an existing file, not a folder")
        summary = self.path / SUMMARY
        if summary.exists() and not overwrite:
            raise UsageError(
                f"run folder {self.path} already holds a finished run ({SUMMARY}); "
                "choose another folder or pass --overwrite"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # A real write, not os.access: root passes os.access on read-only mounts.
            with tempfile.TemporaryFile(dir=self.path):
                pass
            if overwrite:
                summary.unlink(missing_ok=True)
        except OSError as exc:
            raise UsageError(
                f"run folder {self.path} is not writable: {exc.strerror or exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def _target(self, name: str | os.PathLike) -> pathlib.Path:
        if self.finished:
            raise RuntimeError(
                f"{self.path}: {name} written after summary.json; finish() must come last"
            )
        rel = pathlib.PurePath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"file name must be relative and inside the run folder: {name!r}")
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_bytes(self, name: str | os.PathLike, data: bytes) -> pathlib.Path:
        """Write ``data`` to ``name`` inside the folder, atomically; return the path."""
        target = self._target(name)
        atomic_write_bytes(target, data)
        return target

    def write_text(self, name: str | os.PathLike, text: str) -> pathlib.Path:
        """Write UTF-8 ``text`` to ``name`` inside the folder, atomically; return the path."""
        target = self._target(name)
        atomic_write_text(target, text)
        return target

    def write_json(self, name: str | os.PathLike, obj: Any) -> pathlib.Path:
        """Write ``obj`` as JSON (NaN/inf -> null) to ``name``, atomically; return the path."""
        target = self._target(name)
        atomic_write_json(target, obj)
        return target

    def write_timeseries(self, rows: list[dict]) -> pathlib.Path:
        """Write ``timeseries.csv``: one row per dict.

        Columns are those of :func:`timeseries_columns`; a key missing from a
        row, ``None`` and NaN are written as an empty cell.
        """
        columns = timeseries_columns(rows)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(col)) for col in columns])
        return self.write_text(TIMESERIES, buf.getvalue())

    def write_hdr(self, name: str | os.PathLike, histogram: Any) -> pathlib.Path:
        """Write an ``hdrh.histogram.HdrHistogram`` in its base64 compressed encoding.

        Read it back with :func:`read_hdr`.
        """
        encoded = histogram.encode()
        if isinstance(encoded, str):
            encoded = encoded.encode("ascii")
        return self.write_bytes(name, encoded + b"\n")

    def step(self, index: int) -> RunFolder:
        """The sub-run folder ``steps/NN`` (zero-padded to two digits) for a sweep step."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"step index must be a non-negative integer, got {index!r}")
        return RunFolder(self.path / "steps" / f"{index:02d}", overwrite=self.overwrite)

    def finish(self, summary: dict, *, partial: bool = False) -> pathlib.Path:
        """Write ``summary.json`` last and return its path.

        Sets ``summary["partial"] = partial`` and ``summary["schema"]`` (if
        absent) to 1, in the dict passed in. Any write to this folder after
        ``finish`` raises ``RuntimeError``.
        """
        summary["partial"] = bool(partial)
        summary.setdefault("schema", SCHEMA)
        target = self._target(SUMMARY)
        atomic_write_json(target, summary)
        self.finished = True
        return target


def read_hdr(path: str | os.PathLike):
    """Decode a ``.hdr`` file written by :meth:`RunFolder.write_hdr`."""
    from hdrh.histogram import HdrHistogram

    data = pathlib.Path(path).read_bytes().strip()
    return HdrHistogram.decode(data)
