"""Writing a run folder (docs/run-format.md), one atomic file at a time.

The format (names, columns, typed summary and manifest) is declared in
:mod:`inferops.measure.runformat`; this module only lands the files, each with
:mod:`inferops.atomicfile`: a reader (or a crash) sees either the old file or
the new one, never half of one. ``summary.json`` is written last by :meth:`RunFolder.finish`, so a
folder that has it is a complete run.

>>> run = RunFolder("runs/cnn")                    # doctest: +SKIP
>>> run.write_json("manifest.json", manifest)      # doctest: +SKIP
>>> run.write_timeseries(rows)                     # doctest: +SKIP
>>> run.write_hdr("latency.hdr", histogram)        # doctest: +SKIP
>>> run.finish(summary)                            # doctest: +SKIP
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Any

from inferops import redact
from inferops.atomicfile import atomic_write_bytes, json_text
from inferops.exitcodes import UsageError
from inferops.measure import runformat
from inferops.measure.runformat import SCHEMA, SETTLE_DIR, STEPS_DIR, SUMMARY, TIMESERIES


class RunFolder:
    """One run folder being written.

    ``RunFolder(path)`` creates the folder (and its parents). It raises
    :class:`~inferops.exitcodes.UsageError` when ``path`` is a file, cannot be
    created or written, or already holds a finished run (a ``summary.json``)
    and ``overwrite`` is false. With ``overwrite=True`` the old
    ``summary.json`` is removed first, so until :meth:`finish` the folder is
    never mistaken for a finished run.
    """

    def __init__(
        self, path: str | os.PathLike, *, overwrite: bool = False, secrets: tuple[str, ...] = ()
    ):
        self.path = pathlib.Path(path)
        self.overwrite = overwrite
        #: values that must never land in a file here (the run's token, URL passwords):
        #: every write replaces them with ``***``, whatever produced the bytes
        self.secrets = tuple(secrets)
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
        atomic_write_bytes(target, redact.scrub(data, self.secrets))
        return target

    def write_text(self, name: str | os.PathLike, text: str) -> pathlib.Path:
        """Write UTF-8 ``text`` to ``name`` inside the folder, atomically; return the path."""
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str | os.PathLike, obj: Any) -> pathlib.Path:
        """Write ``obj`` as JSON (NaN/inf -> null) to ``name``, atomically; return the path."""
        return self.write_text(name, json_text(obj))

    def write_timeseries(self, rows: list[dict]) -> pathlib.Path:
        """Write ``timeseries.csv`` (:func:`runformat.encode_timeseries`): one row per dict."""
        return self.write_text(TIMESERIES, runformat.encode_timeseries(rows))

    def write_hdr(self, name: str | os.PathLike, histogram: Any) -> pathlib.Path:
        """Write an ``HdrHistogram`` in its base64 compressed encoding (read: ``read_hdr``)."""
        return self.write_bytes(name, runformat.encode_hdr(histogram))

    def step(self, index: int) -> RunFolder:
        """The sub-run folder ``steps/NN`` (zero-padded to two digits) for a sweep step."""
        return self._child(STEPS_DIR, f"{_index('step', index):02d}")

    def probe(self, index: int, attempt: int) -> RunFolder:
        """``settle/NN-K``: the sweep's K-th recovery probe before step NN."""
        return self._child(SETTLE_DIR, f"{_index('probe', index):02d}-{_index('probe', attempt)}")

    def _child(self, *parts: str) -> RunFolder:
        """A run folder inside this one, written under the same rules."""
        return RunFolder(self.path.joinpath(*parts), overwrite=self.overwrite, secrets=self.secrets)

    def finish(self, summary, *, partial: bool = False) -> pathlib.Path:
        """Write ``summary.json`` last and return its path.

        ``summary`` is a :class:`~inferops.measure.runformat.Summary` (or its JSON
        dict). Sets ``partial`` and, if absent, ``schema`` on it. Any write to
        this folder after ``finish`` raises ``RuntimeError``.
        """
        if isinstance(summary, runformat.Summary):
            summary.partial = bool(partial)
            data = summary.to_json()
        else:
            summary["partial"] = bool(partial)
            summary.setdefault("schema", SCHEMA)
            data = summary
        target = self.write_text(SUMMARY, json_text(data))
        self.finished = True
        return target


def _index(what: str, value: int) -> int:
    """``value`` as a sub-folder number: a non-negative integer (``bool`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} index must be a non-negative integer, got {value!r}")
    return value
