"""The run-folder writer: atomic files, summary last, the documented formats."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from hdrh.histogram import HdrHistogram

from inferops import atomicfile
from inferops.atomicfile import atomic_write_bytes, atomic_write_json, atomic_write_text
from inferops.exitcodes import UsageError
from inferops.measure import runfolder
from inferops.measure.runfolder import RunFolder
from inferops.measure.runformat import TIMESERIES_COLUMNS, read_hdr


def _stray(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new ünïcode")
    assert target.read_text(encoding="utf-8") == "new ünïcode"
    assert _stray(tmp_path) == []


def test_failed_replace_keeps_old_content_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"v": 1})

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runfolder.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert _stray(tmp_path) == []


def test_interrupt_during_write_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(runfolder.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert _stray(tmp_path) == []


def test_killed_writer_process_leaves_old_file_intact(tmp_path):
    # A real crash: SIGKILL a writer after its data is in the temp file but before
    # the rename. The target must still hold the complete old content.
    target = tmp_path / "timeseries.csv"
    target.write_bytes(b"old,complete\n")
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from inferops import atomicfile
        real_fsync = os.fsync
        def fsync_then_hang(fd):
            real_fsync(fd)
            print("ready", flush=True)
            time.sleep(60)
        atomicfile.os.fsync = fsync_then_hang
        atomicfile.atomic_write_bytes({str(target)!r}, b"new" * 100000)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert target.read_bytes() == b"old,complete\n"
    # The killed writer could not clean up; its leftover is hidden and named .tmp
    assert all(name.startswith(".timeseries.csv.") for name in _stray(tmp_path))


def test_atomic_files_get_umask_mode_not_0600(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {})
    assert target.stat().st_mode & 0o777 == 0o666 & ~atomicfile._UMASK


def test_json_nan_and_inf_become_null(tmp_path):
    import numpy as np

    target = tmp_path / "s.json"
    atomic_write_json(
        target,
        {
            "a": float("nan"),
            "b": [float("inf"), -float("inf"), 1.5],
            "c": (np.float32(2.5),),
            "d": np.array([1, 2]),
            "e": np.float64("nan"),
        },
    )
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "a": None,
        "b": [None, None, 1.5],
        "c": [2.5],
        "d": [1, 2],
        "e": None,
    }
    assert text.startswith("{\n  ")  # indent=2


def test_unserialisable_json_raises_before_touching_file(tmp_path):
    target = tmp_path / "s.json"
    atomic_write_json(target, {"ok": True})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": True}
    assert _stray(tmp_path) == []


def test_runfolder_creates_nested_folder(tmp_path):
    run = RunFolder(tmp_path / "a" / "b")
    assert run.path.is_dir()
    assert run.write_json("manifest.json", {"x": 1}) == run.path / "manifest.json"


def test_runfolder_refuses_finished_run_unless_overwrite(tmp_path):
    run = RunFolder(tmp_path / "r")
    run.write_text("note.txt", "first")
    run.finish({"passed": True})
    with pytest.raises(UsageError, match="already holds a finished run"):
        RunFolder(tmp_path / "r")
    # overwrite: the old summary goes first, so the folder is not "finished" mid-rewrite
    again = RunFolder(tmp_path / "r", overwrite=True)
    assert not (again.path / "summary.json").exists()
    assert (again.path / "note.txt").read_text() == "first"


def test_runfolder_reuses_unfinished_folder(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "locust_stats.csv").write_text("x")
    RunFolder(tmp_path / "r")  # no summary.json: not a run yet, fine


def test_runfolder_on_a_file_is_usage_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="is an existing file"):
        RunFolder(f)
    with pytest.raises(UsageError, match="not writable"):
        RunFolder(f / "sub")


def test_runfolder_unwritable_mount_is_usage_error(tmp_path):
    # /proc refuses file creation even for root
    with pytest.raises(UsageError, match="not writable"):
        RunFolder("/proc/inferops-run")


def test_names_must_stay_inside_folder(tmp_path):
    run = RunFolder(tmp_path / "r")
    for bad in ("../escape.json", "/etc/x.json", ""):
        with pytest.raises(ValueError):
            run.write_text(bad, "x")
    assert not (tmp_path / "escape.json").exists()


def test_finish_writes_summary_last_and_sets_fields(tmp_path, monkeypatch):
    order = []
    real_replace = os.replace

    def recording_replace(src, dst):
        order.append(os.path.basename(dst))
        real_replace(src, dst)

    monkeypatch.setattr(runfolder.os, "replace", recording_replace)
    run = RunFolder(tmp_path / "r")
    run.write_json("manifest.json", {})
    run.write_timeseries([{"t_s": 0}])
    summary = {"passed": False}
    path = run.finish(summary, partial=True)
    assert order == ["manifest.json", "timeseries.csv", "summary.json"]
    assert path == run.path / "summary.json"
    assert json.loads(path.read_text()) == {"passed": False, "partial": True, "schema": 1}
    assert summary["partial"] is True
    with pytest.raises(RuntimeError, match="after summary.json"):
        run.write_text("late.txt", "x")
    assert not (run.path / "late.txt").exists()


def test_finish_keeps_given_schema(tmp_path):
    path = RunFolder(tmp_path / "r").finish({"schema": 7})
    assert json.loads(path.read_text()) == {"schema": 7, "partial": False}


def test_timeseries_columns_order_and_empty_cells(tmp_path):
    run = RunFolder(tmp_path / "r")
    rows = [
        {"t_s": -1, "cpu_pct": 12.5, "cpu10_pct": 1, "cpu2_pct": 2, "zz": "z"},
        {"t_s": 0, "achieved_qps": 99.5, "gpu_util_pct": None, "p99_ms": float("nan")},
    ]
    path = run.write_timeseries(rows)
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    header = table[0]
    assert header[: len(TIMESERIES_COLUMNS)] == list(TIMESERIES_COLUMNS)
    assert header[len(TIMESERIES_COLUMNS) :] == ["cpu2_pct", "cpu10_pct", "zz"]
    first = dict(zip(header, table[1], strict=True))
    second = dict(zip(header, table[2], strict=True))
    assert first["t_s"] == "-1" and first["cpu_pct"] == "12.5" and first["cpu10_pct"] == "1"
    assert first["achieved_qps"] == "" and first["gpu_util_pct"] == ""
    assert second["achieved_qps"] == "99.5"
    assert second["gpu_util_pct"] == "" and second["p99_ms"] == "" and second["zz"] == ""
    assert len(table) == 3


def test_timeseries_with_no_rows_has_documented_header(tmp_path):
    path = RunFolder(tmp_path / "r").write_timeseries([])
    assert path.read_text() == ",".join(TIMESERIES_COLUMNS) + "\n"


def test_hdr_round_trip(tmp_path):
    hist = HdrHistogram(1, 60_000_000, 3)
    for us in (150, 900, 900, 4_100, 9_800, 250_000):
        hist.record_value(us)
    hist.record_value(1_200, 10)
    run = RunFolder(tmp_path / "r")
    path = run.write_hdr("latency.hdr", hist)
    back = read_hdr(path)
    assert back.get_total_count() == hist.get_total_count() == 16
    for pct in (50, 90, 99, 99.9, 100):
        assert back.get_value_at_percentile(pct) == hist.get_value_at_percentile(pct)
    for us in (150, 900, 1_200, 250_000):
        assert back.get_count_at_value(us) == hist.get_count_at_value(us)
    # the file is the documented base64 compressed encoding, decodable directly
    assert HdrHistogram.decode(path.read_bytes().strip()).get_total_count() == 16


def test_step_folders_are_zero_padded_runs(tmp_path):
    run = RunFolder(tmp_path / "r")
    s0 = run.step(0)
    s12 = run.step(12)
    assert s0.path == run.path / "steps" / "00" and s0.path.is_dir()
    assert s12.path == run.path / "steps" / "12"
    s0.finish({"offered_qps": 10.0})
    with pytest.raises(UsageError):
        run.step(0)
    with pytest.raises(ValueError):
        run.step(-1)
    # the parent is not finished because a step is
    assert not (run.path / "summary.json").exists()


def test_probe_folders_are_named_by_step_and_attempt(tmp_path):
    run = RunFolder(tmp_path / "r")
    probe = run.probe(3, 0)
    assert probe.path == run.path / "settle" / "03-0" and probe.path.is_dir()
    assert run.probe(12, 7).path == run.path / "settle" / "12-7"
    for index, attempt in ((-1, 0), (0, -1), (True, 0), (1.0, 0)):
        with pytest.raises(ValueError, match="probe index must be a non-negative integer"):
            run.probe(index, attempt)
