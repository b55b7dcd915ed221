"""The same store on a real PostgreSQL (Debian package), started by the tests in a temp dir."""

from __future__ import annotations

import json
import threading

import pytest

from inferops.exitcodes import UsageError
from inferops.history.runsource import load_run
from inferops.history.store import SCHEMA_VERSION, open_store

from .conftest import inferops


def test_import_list_baseline_and_compare_by_id(postgres, folders):
    url = postgres("t_cli")
    done = inferops("history", "import", *folders[:3], folders[10], "--store", url)
    assert done.returncode == 0, done.stderr
    assert "stored 4 new runs in postgresql://" in done.stdout
    again = inferops("history", "import", folders[0], "--store", url)
    assert "stored 0 new runs" in again.stdout
    listing = json.loads(inferops("history", "--json", "--store", url).stdout)
    assert [r["id"] for r in listing["runs"]] == [1, 2, 3, 4]
    assert inferops("baseline", "set", "#1", "--store", url).returncode == 0
    cmp = inferops("compare", "#1", "#4", "--store", url)
    assert cmp.returncode == 1 and "REGRESSION" in cmp.stdout
    with open_store(url) as store:
        data = store.run_data(4)
        assert data.histograms == load_run(folders[10]).histograms
        assert store.baselines() == {("synthetic/v2/open@200qps", "synthetic"): 1}
        assert store.schema_version() == SCHEMA_VERSION


def test_findings_round_trip(postgres, folders):
    with open_store(postgres("t_findings"), write=True) as store:
        a, _ = store.add_run(load_run(folders[0]))
        b, _ = store.add_run(load_run(folders[10]))
        store.add_finding(
            {
                "scenario": "s", "profile": "p", "metric": "latency_p99_ms",
                "kind": "regression", "baseline_run_id": a, "candidate_run_id": b,
                "effect": 0.12, "ci_low": 0.08, "ci_high": 0.16, "p_value": 1e-5,
                "test": "t", "attribution": [{"what": "git_sha", "before": "a", "after": "b"}],
            }
        )  # fmt: skip
        (finding,) = store.findings()
        assert finding["effect"] == 0.12 and finding["attribution"][0]["what"] == "git_sha"


def test_concurrent_writers_each_get_whole_runs(postgres, folders):
    url = postgres("t_concurrent")
    open_store(url, write=True).close()
    errors = []

    def writer(chunk):
        try:
            with open_store(url, write=True) as store:
                for folder in chunk:
                    store.add_run(load_run(folder))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(folders[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with open_store(url) as store:
        runs = store.runs()
        assert len(runs) == len(folders)
        for run in runs:
            assert set(store.run_data(run.id).histograms) == {"latency"}


def test_a_failed_run_write_rolls_back(postgres, folders, monkeypatch):
    url = postgres("t_rollback")
    from inferops.history import store as store_mod

    with open_store(url, write=True) as store:
        store.add_run(load_run(folders[0]))

        def broken(self, *args):
            raise UsageError("disk full (simulated mid-run)")

        monkeypatch.setattr(store_mod.Store, "_insert_histogram", broken)
        with pytest.raises(UsageError):
            store.add_run(load_run(folders[1]))
        monkeypatch.undo()
        assert len(store.runs()) == 1  # no run row without its histograms
        store.add_run(load_run(folders[1]))
        assert len(store.runs()) == 2


def test_unreachable_postgres_is_one_clear_line_without_the_password():
    done = inferops(
        "history", "--store", "postgresql://user:s3cret@127.0.0.1:1/db",
        env={"PGCONNECT_TIMEOUT": "3"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot open results store postgresql://user:***@127.0.0.1:1/db" in done.stderr
    assert "s3cret" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
