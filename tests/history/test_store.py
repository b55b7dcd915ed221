"""The results store: import, baselines, schema migrations, and its failure paths for real."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from inferops.exitcodes import UsageError
from inferops.history.runsource import load_run
from inferops.history.store import SCHEMA_VERSION, open_store

from .conftest import ROOT, inferops


def test_import_is_idempotent_and_keeps_everything(folders, store_path):
    done = inferops("history", "import", *folders[:3], "--store", store_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"stored 3 new runs in {store_path}"
    again = inferops("history", "import", *folders[:3], "--store", store_path)
    assert "stored 0 new runs" in again.stdout and again.stdout.count("already stored") == 3
    with open_store(str(store_path)) as store:
        runs = store.runs()
        assert [r.id for r in runs] == [1, 2, 3]
        data = store.run_data(1)
        original = load_run(folders[0])
        assert data.summary == original.summary and data.manifest == original.manifest
        assert data.histograms == original.histograms  # the recorder's HDR text, verbatim
        assert data.windows == original.windows
        assert runs[0].git_sha == "a" * 40 and len(runs[0].env_fingerprint) == 16
        assert runs[0].scenario == "synthetic/v2/open@200qps" and runs[0].profile == "synthetic"
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_history_listing_and_json(folders, store_path):
    inferops("history", "import", *folders[:2], "--store", store_path, "--scenario", "s1")
    listing = inferops("history", "--store", store_path)
    assert listing.returncode == 0
    assert listing.stdout.strip().splitlines()[-1].startswith(f"2 runs in {store_path}")
    as_json = json.loads(inferops("history", "--json", "--store", store_path).stdout)
    assert [r["scenario"] for r in as_json["runs"]] == ["s1", "s1"]
    assert as_json["runs"][0]["metrics"]["latency_p99_ms"] > 0


def test_baseline_set_by_id_folder_and_latest(folders, store_path):
    inferops("history", "import", *folders[:3], "--store", store_path)
    assert inferops("baseline", "set", "#2", "--store", store_path).returncode == 0
    with open_store(str(store_path)) as store:
        assert list(store.baselines().values()) == [2]
    latest = inferops("baseline", "set", "latest", "--store", store_path)
    assert latest.returncode == 0 and "#3" in latest.stdout
    folder = inferops("baseline", "set", folders[5], "--store", store_path)  # stored first
    assert folder.returncode == 0 and "#4" in folder.stdout
    shown = json.loads(inferops("baseline", "show", "--json", "--store", store_path).stdout)
    assert [b["run_id"] for b in shown["baselines"]] == [4]
    missing = inferops("baseline", "set", "#99", "--store", store_path)
    assert missing.returncode == 2 and "no run #99" in missing.stderr


def test_a_missing_store_is_a_clear_error_and_is_not_created(tmp_path):
    where = tmp_path / "nope.sqlite"
    done = inferops("history", "--store", where)
    assert done.returncode == 2 and "no results store" in done.stderr
    assert "Traceback" not in done.stderr and not where.exists()


def test_old_schema_is_migrated_in_place_and_data_kept(folders, store_path):
    with open_store(str(store_path), write=True) as store:
        store.add_run(load_run(folders[0]))
    # turn it back into a version-1 store holding one run
    conn = sqlite3.connect(store_path)
    conn.executescript("DROP TABLE findings; DELETE FROM inferops_schema WHERE version > 1;")
    conn.close()
    with pytest.raises(UsageError, match="schema 1"):
        open_store(str(store_path))  # reading does not migrate behind the user's back
    with open_store(str(store_path), write=True) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert [r.id for r in store.runs()] == [1]
        assert store.findings() == []


def test_a_store_from_a_newer_inferops_is_refused_untouched(folders, store_path):
    inferops("history", "import", folders[0], "--store", store_path)
    conn = sqlite3.connect(store_path)
    conn.execute("INSERT INTO inferops_schema VALUES (99, 'future')")
    conn.commit()
    conn.close()
    before = store_path.read_bytes()
    done = inferops("history", "import", folders[1], "--store", store_path)
    assert done.returncode == 2 and "schema 99, newer" in done.stderr
    assert "Traceback" not in done.stderr
    assert store_path.read_bytes() == before


def test_a_corrupt_store_is_a_clear_error_and_left_untouched(folders, store_path):
    store_path.write_bytes(b"this is not a database at all" * 200)
    before = store_path.read_bytes()
    for args in (["history"], ["history", "import", str(folders[0])]):
        done = inferops(*args, "--store", store_path)
        assert done.returncode == 2, done.stderr
        assert "not a readable SQLite database" in done.stderr and "left untouched" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert store_path.read_bytes() == before


def test_a_locked_store_is_a_clear_error_and_nothing_is_lost(folders, store_path):
    inferops("history", "import", folders[0], "--store", store_path)
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer mid-transaction
    try:
        done = inferops(
            "history", "import", folders[1], "--store", store_path,
            env={"INFEROPS_HISTORY_TIMEOUT": "0.5"},
        )  # fmt: skip
        assert done.returncode == 2
        assert "is locked by another writer" in done.stderr and "nothing was written" in done.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    retry = inferops("history", "import", folders[1], "--store", store_path)
    assert retry.returncode == 0
    with open_store(str(store_path)) as store:
        assert len(store.runs()) == 2


_WRITER = textwrap.dedent(
    """
    import sys, time
    from inferops.history.runsource import load_run
    from inferops.history import store as store_mod

    store = store_mod.open_store(sys.argv[1], write=True)
    for folder in sys.argv[2:4]:
        store.add_run(load_run(folder))
    real = store_mod.Store._insert_histogram

    def stall(self, *args):
        real(self, *args)  # the run row and one histogram are written, not committed
        print("IN-TRANSACTION", flush=True)
        time.sleep(60)

    store_mod.Store._insert_histogram = stall
    store.add_run(load_run(sys.argv[4]))
    print("COMMITTED", flush=True)
    """
)


def test_writer_killed_mid_transaction_leaves_the_store_intact(folders, store_path):
    """SIGKILL a real writer between its run row and its histograms: reopen, all whole."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(store_path), *map(str, folders[:3])],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "IN-TRANSACTION", line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with open_store(str(store_path)) as store:
        assert store.integrity() == "ok"
        runs = store.runs()
        assert [r.source for r in runs] == [str(folders[0]), str(folders[1])]
        for run in runs:  # no run row without its histograms
            assert set(store.run_data(run.id).histograms) == {"latency"}
    # the interrupted run can simply be imported again
    again = inferops("history", "import", folders[2], "--store", store_path)
    assert again.returncode == 0 and "stored 1 new run" in again.stdout
