"""The sizing model checked against a real fleet: 1 and 2 ``lb_fleet`` nodes swept through
nginx (the others at weight 0), both recorded with ``--nodes``; ``inferops report`` on the
two runs holds the 2-node capacity against 2 x the one-node capacity behind the same
balancer in its "predicted vs measured" table (3 nodes: the benchmark, as below). The sweeps here are short (CI time), so this checks that the table is produced
from real runs and reports the error; the +-15 % goal is checked by
``benchmarks/fleet_scaling.py`` with longer steps (docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.realhost.lbfleet import SweepSettings, measure_scaling

pytestmark = pytest.mark.realhost

# Generous bounds: this test checks the mechanics (real runs -> the table, the error
# reported) and must hold on a busy CI box; the benchmark measures the figures.
# A step is at least 600 requests (PLANNED_SAMPLES_P99): at 20/s one node's first step
# took 30 s and the test 65-161 s; a 25 %-capped node serves hundreds a second.
SHORT = SweepSettings(slo_p99_ms=500.0, start_qps=60.0, duration="3s", warmup="1s",
                      precision=0.1, budget="15s", late_tolerance_ms=50.0)  # fmt: skip


def test_predicted_vs_measured_comes_from_real_runs(lb_fleet, tmp_path):
    from inferops.report.analysis import Options, analyse
    from inferops.report.runs import load_run

    runs = measure_scaling(lb_fleet, tmp_path, SHORT, counts=(1, 2))
    loaded = [load_run(r) for r in runs]
    assert [r.manifest.load["nodes"] for r in loaded] == [1, 2]
    assert {r.summary.target for r in loaded} == {lb_fleet.url}
    facts = analyse(loaded, Options(target_qps=100.0))
    one = facts.runs[0].sizing.max_qps_at_slo
    assert one, facts.runs[0].sizing.refused
    rows = {row.nodes: row for row in facts.fleet_check}
    assert sorted(rows) == [2]
    for nodes, row in rows.items():
        assert row.predicted_qps == pytest.approx(nodes * one)
        assert row.measured_qps == facts.runs[nodes - 1].sizing.max_qps_at_slo
        assert row.error_pct is not None and row.within is not None
    # each node's own /metrics over each sweep: nginx sent work to the first N nodes only
    # (the others at weight 0 are `down`), and every node it used ran batches
    names = [n.name for n in lb_fleet.nodes]
    for nodes, run in zip((1, 2), runs, strict=True):
        did = json.loads(run.with_name(run.name + ".nodes.json").read_text())
        assert [bool(did[name] and did[name]["rows"]) for name in names] == [
            i < nodes for i in range(len(names))
        ], did
        for name in names[:nodes]:
            assert did[name]["mean_batch"] >= 1 and did[name]["cpu_us_per_row"] > 0, did
    # each N-node sweep ran through nginx at N times the one-node start rate and above
    for nodes in (2,):
        steps = loaded[nodes - 1].slo.steps
        assert steps and steps[0].offered_qps == pytest.approx(nodes * SHORT.start_qps)

    html = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "inferops", "report", *map(str, runs), "--out", str(html),
         "--target-qps", "100"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    text = html.read_text()
    assert 'id="fleet-check-table"' in text
    for row in rows.values():
        assert f'data-nodes="{row.nodes}"' in text
        assert f"{row.error_pct:+.1f} %" in text
