"""``inferops nightly`` end to end against a real ``inferops serve`` (embedded mlp model).

Real parts: the reference server in its own process, ``inferops bench`` (Locust,
open loop) started by ``inferops nightly`` as a subprocess, the SQLite store, the
comparison, the confirming rerun and the trend report.

The "normal" server batches with a 100 ms queue delay, so its latency is mostly
that deterministic wait rather than the scheduling noise of a shared 2-core
machine; the "slowed" one waits 500 ms (P50 about 5x). The config's
min_effect = 100 % keeps load swings on this box (up to 2x at P99) from being
confirmed as regressions; the statistics themselves are tested on synthetic
histories (test_detection.py).
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from inferops.server.process import ServerProcess

from .conftest import ROOT, inferops

pytestmark = pytest.mark.slow

CONFIG = """
[nightly]
store = "{store}"
out = "{out}"
report = "{out}/trend.html"
thresholds = "{thresholds}"
min_effect = "100%"
rerun = true

[provision]
enabled = false

[[scenario]]
name = "mlp-40qps"
target = "{url}"
model = "mlp"
profile = "e2e"
rate = 40
duration = "15s"
warmup = "2s"
seed = 1
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {**os.environ, "INFEROPS_CACHE": str(tmp_path_factory.mktemp("cache"))}


def night(tmp_path, env, queue_delay_ms: float, name: str):
    # Started once, stopped (its process group) whatever happens. `with ServerProcess()`
    # followed by start() used to start a second server and orphan the first one.
    server = ServerProcess("mlp", max_batch_size=32, max_queue_delay_ms=queue_delay_ms, env=env)
    try:
        server.start(timeout=120)
        config = tmp_path / f"{name}.toml"
        config.write_text(
            CONFIG.format(
                store=tmp_path / "history.sqlite",
                out=tmp_path / "runs",
                thresholds=ROOT / "tests/history/e2e_thresholds.toml",
                url=server.url,
            )
        )
        return inferops("nightly", "--config", config, env=env, timeout=600)
    finally:
        server.stop(timeout=10)


def test_nightly_passes_twice_then_confirms_a_deliberate_slowdown(tmp_path, env):
    first = night(tmp_path, env, 100, "n1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "is now the baseline" in first.stdout
    for name in ("n2", "n3"):  # a normal configuration passes, twice in a row
        done = night(tmp_path, env, 100, name)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "mlp-40qps: ok" in done.stdout
    slowed = night(tmp_path, env, 500, "n4")
    out = slowed.stdout
    assert slowed.returncode == 1, out + slowed.stderr
    assert "suspected latency_p50_ms (regression" in out
    assert "CONFIRMED REGRESSION (exit 1)" in out
    assert out.strip().splitlines()[-1].startswith(f"wrote {tmp_path}/runs/trend.html and ")

    result_file = out.strip().split(" and ")[-1]
    doc = json.loads(open(result_file).read())
    scenario = doc["scenarios"][0]
    assert scenario["status"] == "regression" and scenario["rerun_id"] == scenario["run_id"] + 1
    p50 = next(f for f in scenario["confirmed"] if f["metric"] == "latency_p50_ms")
    assert p50["effect"] > 1.0 and p50["ci_low"] > 1.0 and p50["p_value"] < 0.01
    assert p50["baseline_run_id"] == 1

    db = sqlite3.connect(tmp_path / "history.sqlite")
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 5  # 4 nights + 1 rerun
    assert db.execute("SELECT DISTINCT kind FROM findings").fetchall() == [("regression",)]
    db.close()
    html = (tmp_path / "runs" / "trend.html").read_text()
    assert 'href="#run-1"' in html and f'href="#run-{scenario["run_id"]}"' in html
    assert "regression" in html
    listing = inferops("history", "--store", tmp_path / "history.sqlite")
    assert listing.returncode == 0 and "5 runs in" in listing.stdout
