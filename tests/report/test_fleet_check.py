"""The report's "predicted vs measured" table: runs recorded with ``bench --nodes N``
against N x a one-node run's capacity (synthetic run folders, no servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferops.report import sizing
from inferops.report.analysis import Options, analyse
from inferops.report.runs import load_run
from inferops.report.synthetic import write_sweep


def _sweep(path: Path, capacity: float, nodes: int | None, profile: str) -> Path:
    write_sweep(path, capacity_qps=capacity, profile=profile)
    if nodes is not None:
        for manifest in path.rglob("manifest.json"):
            doc = json.loads(manifest.read_text())
            doc["load"] = {"model": "cnn", "nodes": nodes}
            manifest.write_text(json.dumps(doc))
    return path


def _facts(*runs: Path):
    return analyse([load_run(r) for r in runs], Options(target_qps=100.0))


def test_n_node_runs_are_held_against_n_times_the_one_node_capacity(tmp_path):
    one = _sweep(tmp_path / "one", 200.0, None, "one")  # no --nodes recorded: one node
    two = _sweep(tmp_path / "two", 390.0, 2, "two")
    three = _sweep(tmp_path / "three", 480.0, 3, "three")
    facts = _facts(one, two, three)
    base = facts.runs[0].sizing.max_qps_at_slo
    rows = {r.nodes: r for r in facts.fleet_check}
    assert sorted(rows) == [2, 3]
    for nodes, run in ((2, facts.runs[1]), (3, facts.runs[2])):
        row = rows[nodes]
        assert row.baseline == "one" and row.baseline_qps == base
        assert row.predicted_qps == pytest.approx(nodes * base)
        assert row.measured_qps == run.sizing.max_qps_at_slo
        assert row.error_pct == pytest.approx((row.measured_qps / (nodes * base) - 1) * 100)
        assert row.within == (abs(row.error_pct) <= 15)
    assert rows[2].within and not rows[3].within  # 390 vs ~2x190; 480 vs ~3x190


def _retarget(path: Path, target: str) -> Path:
    for summary in path.rglob("summary.json"):
        doc = json.loads(summary.read_text())
        doc["target"] = target
        summary.write_text(json.dumps(doc))
    return path


def test_a_one_node_run_behind_the_same_balancer_is_the_baseline(tmp_path):
    # straight at a node it carried more than behind nginx: the balancer's cost is part of
    # what each node delivers in the fleet, so the prediction starts from the nginx run
    lb = "http://10.0.0.9:80"
    direct = _retarget(_sweep(tmp_path / "direct", 260.0, 1, "direct"), "http://10.0.0.1:8000")
    behind = _retarget(_sweep(tmp_path / "behind", 200.0, 1, "behind"), lb)
    two = _retarget(_sweep(tmp_path / "two", 390.0, 2, "two"), lb)
    facts = _facts(direct, behind, two)
    (row,) = facts.fleet_check
    assert row.baseline == "behind"
    assert row.predicted_qps == pytest.approx(2 * facts.runs[1].sizing.max_qps_at_slo)
    # without the nginx run, the best one-node run is all there is
    (row,) = _facts(direct, two).fleet_check
    assert row.baseline == "direct"


def test_no_one_node_run_means_no_table(tmp_path):
    two = _sweep(tmp_path / "two", 390.0, 2, "two")
    assert _facts(two).fleet_check == []


def test_the_table_is_rendered(tmp_path):
    from inferops.report.render import write_html

    one = _sweep(tmp_path / "one", 200.0, 1, "one")
    two = _sweep(tmp_path / "two", 390.0, 2, "two")
    runs = [load_run(one), load_run(two)]
    facts = analyse(runs, Options(target_qps=100.0))
    html = write_html(facts, runs, tmp_path / "r.html").read_text()
    assert 'id="fleet-check-table"' in html
    assert 'data-nodes="2"' in html and "within ±15 %" in html


def test_fleet_capacity_refuses_nonsense():
    assert sizing.fleet_capacity(3, 100.0) == 300.0
    with pytest.raises(ValueError):
        sizing.fleet_capacity(0, 100.0)
    with pytest.raises(ValueError):
        sizing.fleet_capacity(2, 0.0)
