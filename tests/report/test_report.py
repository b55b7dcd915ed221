"""The report rendered from synthetic run folders: numbers checked against the inputs."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from inferops.cli import main
from inferops.exitcodes import UsageError
from inferops.report import charts, synthetic
from inferops.report.analysis import Options
from inferops.report.cli import write_report
from inferops.report.runs import load_runs

from .conftest import PROFILES, SLO_MS
from .htmlfacts import number, parse

SECTIONS = ["verdict", "latency", "percentiles", "resources", "comparison", "sizing", "environment"]
TARGET = 1000.0
HOURLY = 0.5
CATALOG = f"""
[[hardware]]
name = "test-cpu-node"
cpu = "8 vCPU"
gpu = ""
hourly_usd = {HOURLY}
power_w = 100
profiles = ["cpu-*"]
note = "test price"
"""


def expected_max_qps(capacity_qps: float, base_ms: float, slo_ms: float) -> float:
    """From the synthetic model's closed form: the best step whose P99 meets the SLO."""
    steps = [capacity_qps * f for f in (0.2, 0.4, 0.6, 0.8, 0.9, 0.95)]
    ok = [
        min(q, 0.98 * capacity_qps)
        for q in steps
        if synthetic.p99_at(q, base_ms=base_ms, capacity_qps=capacity_qps) <= slo_ms
    ]
    return max(ok)


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "hw.toml"
    path.write_text(CATALOG)
    return path


@pytest.fixture(scope="module")
def report(sweeps, catalog_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r.html"
    code = main(
        [
            "report",
            *map(str, sweeps.values()),
            "--out",
            str(out),
            "--target-qps",
            str(TARGET),
            "--catalog",
            str(catalog_file),
        ]
    )
    assert code == 0
    return out.read_text()


def test_every_section_present_once(report):
    assert parse(report).sections == SECTIONS


def test_max_qps_at_slo_and_nodes_follow_from_the_inputs(report):
    facts = parse(report).facts
    headroom = 1 - 85 / 100  # synthetic manifests record max_cpu_percent = 85
    for name, params in PROFILES.items():
        best = expected_max_qps(params["capacity_qps"], params["base_ms"], SLO_MS)
        shown = number(facts[(name, "max-qps-at-slo")][0])
        assert shown == pytest.approx(best, abs=0.05)
        nodes = math.ceil(TARGET / (best * (1 - headroom)))
        assert number(facts[(name, "nodes")][0]) == nodes
        assert {number(t) for t in facts[(name, "proposed")]} == {nodes + 1}
        monthly = (nodes + 1) * HOURLY * 730
        assert number(facts[(name, "monthly")][0]) == pytest.approx(monthly, abs=0.5)
        per_million = monthly / (TARGET * 730 * 3600 / 1e6)
        assert number(facts[(name, "per-million")][0]) == pytest.approx(per_million, abs=5e-4)
    # the two profiles really differ: batching carries more per node
    assert number(facts[("cpu-batching", "nodes")][0]) < number(facts[("cpu-batch-1", "nodes")][0])


def test_erlang_c_prediction_shown_and_consistent(report, sweeps):
    from inferops.report import sizing

    facts = parse(report).facts
    for name, params in PROFILES.items():
        # the synthetic service time is exponential with mean base_ms; peak = top step
        peak = min(params["capacity_qps"] * 0.95, params["capacity_qps"] * 0.98)
        model = sizing.fit_node_model(peak, params["base_ms"])
        nodes = int(number(facts[(name, "proposed")][0]))
        predicted = model.p99_ms(TARGET / nodes)
        assert number(facts[(name, "predicted-p99")][0]) == pytest.approx(predicted, rel=0.02)
        # the model's own P99 at the measured capacity, shown beside the measured one
        best = expected_max_qps(params["capacity_qps"], params["base_ms"], SLO_MS)
        check = facts[(name, "model-check")][0].split()
        assert float(check[1]) == pytest.approx(model.p99_ms(best), rel=0.02)


def test_verdict_and_settings(report):
    facts = parse(report).facts
    assert facts[(None, "slo-ms")] == [f"{SLO_MS:.1f}"]
    assert facts[(None, "headroom")] == ["0.15"]
    assert facts[(None, "overall")] == ["PASS"]
    assert facts[("cpu-batching", "generator")] == ["no"]
    assert facts[("cpu-batching", "gpu")] == ["no GPU"]


def test_report_is_self_contained(report):
    assert "<script" not in report and "<link" not in report and "<img" not in report
    # no fetched URLs: only SVG namespace declarations mention http
    urls = set(re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)""", report))
    assert urls == set(), urls
    assert "url(http" not in report and "@import" not in report
    assert report.count("<svg") >= 2 * len(PROFILES) + 2


def test_invalid_run_is_shown_but_not_sized(make_sweep, sweeps, catalog_file, tmp_path):
    bad = make_sweep("cpu-bad", valid=False, slo_p99_ms=SLO_MS)
    summary = json.loads((bad / "summary.json").read_text())
    proof = "P99 over 50 ms proven despite the late sends: 40 of 1000 answers ..."
    summary["breach_proven"] = {"service_over": 40, "needed": 19, "reason": proof}
    (bad / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "r.html"
    runs = load_runs([sweeps["cpu-batching"], bad])
    from inferops.report import catalog

    write_report(runs, Options(target_qps=TARGET, catalog=catalog.load(catalog_file)), out)
    html = out.read_text()
    facts = parse(html).facts
    refused = facts[("cpu-bad", "refused")][0]
    assert "invalid" in refused and "load generator was the bottleneck" in refused
    assert facts[("cpu-bad", "generator")] == ["yes"]
    assert facts[("cpu-bad", "breach-proven")] == [proof]  # the invalid run still proved that
    assert facts[("cpu-bad", "proposed")] == ["not sized"]
    assert ("cpu-bad", "nodes") not in facts
    assert facts[(None, "overall")] == ["INVALID"]
    # still shown: its curve is in the latency section
    assert number(facts[("cpu-bad", "max-qps-at-slo")][0]) > 0


def test_gpu_run_shows_gpu_metrics(make_sweep, tmp_path):
    gpu = make_sweep("l4-test", gpu=True, slo_p99_ms=SLO_MS)
    out = tmp_path / "r.html"
    write_report(load_runs([gpu]), Options(target_qps=TARGET), out)
    html = out.read_text()
    assert ("l4-test", "gpu") not in parse(html).facts
    assert "Peak GPU utilisation 80 %" in html
    assert "No hardware catalogue entry serves profile" in html


def test_slo_override_recomputes_from_steps(sweeps, tmp_path):
    out = tmp_path / "r.html"
    params = PROFILES["cpu-batching"]
    tighter = 30.0
    write_report(
        load_runs([sweeps["cpu-batching"]]), Options(target_qps=TARGET, slo_p99_ms=tighter), out
    )
    facts = parse(out.read_text()).facts
    best = expected_max_qps(params["capacity_qps"], params["base_ms"], tighter)
    assert best < expected_max_qps(params["capacity_qps"], params["base_ms"], SLO_MS)
    assert number(facts[("cpu-batching", "max-qps-at-slo")][0]) == pytest.approx(best, abs=0.05)


def test_headroom_from_thresholds_file(sweeps, tmp_path):
    limits = tmp_path / "thresholds.toml"
    limits.write_text("max_cpu_percent = 60\n")
    out = tmp_path / "r.html"
    write_report(
        load_runs([sweeps["cpu-batch-1"]]), Options(target_qps=TARGET, thresholds_path=limits), out
    )
    facts = parse(out.read_text()).facts
    assert facts[(None, "headroom")] == ["0.40"]
    best = expected_max_qps(**PROFILES["cpu-batch-1"], slo_ms=SLO_MS)
    assert number(facts[("cpu-batch-1", "nodes")][0]) == math.ceil(TARGET / (best * 0.6))


def test_different_slos_refused_in_process(make_sweep):
    a = make_sweep("cpu-a", slo_p99_ms=50.0, steps_qps=[20, 40])
    b = make_sweep("cpu-b", slo_p99_ms=80.0, steps_qps=[20, 40])
    with pytest.raises(UsageError, match="different SLOs"):
        write_report(load_runs([a, b]), Options(target_qps=10), a.parent / "x.html")
    assert not (a.parent / "x.html").exists()


def test_downsample_keeps_spikes_and_means():
    rows = 86_400
    frame = pd.DataFrame(
        {
            "t_s": np.arange(rows, dtype=float),
            "achieved_qps": np.full(rows, 100.0),
            "p99_ms": np.full(rows, 10.0),
            "errors": np.zeros(rows),
        }
    )
    frame.loc[50_000, "p99_ms"] = 900.0
    frame.loc[60_000, "errors"] = 144.0
    small, bucket = charts.downsample(frame)
    assert len(small) <= charts.MAX_POINTS
    assert bucket == math.ceil(rows / charts.MAX_POINTS)
    assert small["p99_ms"].max() == 900.0  # a one-second spike survives
    assert small["achieved_qps"].mean() == pytest.approx(100.0)
    assert small["errors"].sum() * bucket == pytest.approx(144.0)  # per-second rate kept


# --- the real CLI in a subprocess: exit codes, one-line messages, nothing left behind ---


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "inferops", "report", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _only_expected_files(folder, allowed):
    return sorted(p.name for p in folder.iterdir()) == sorted(allowed)


def test_cli_missing_run_folder(tmp_path):
    out = tmp_path / "out" / "r.html"
    res = _cli(tmp_path / "absent", "--out", out, "--target-qps", 10, cwd=tmp_path)
    assert res.returncode == 2
    assert f"run folder not found: {tmp_path / 'absent'}" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_truncated_summary_keeps_old_report(make_sweep, tmp_path):
    run = make_sweep("cpu-t", steps_qps=[20, 40])
    summary = run / "summary.json"
    summary.write_text(summary.read_text()[:100])
    out = tmp_path / "r.html"
    out.write_text("previous report")
    res = _cli(run, "--out", out, "--target-qps", 10, cwd=tmp_path)
    assert res.returncode == 2
    assert str(summary) in res.stderr and "invalid JSON" in res.stderr
    assert out.read_text() == "previous report"  # nothing lost
    assert _only_expected_files(tmp_path, ["cpu-t", "r.html"])


def test_cli_different_slos(make_sweep, tmp_path):
    a = make_sweep("cpu-a", slo_p99_ms=50.0, steps_qps=[20, 40])
    b = make_sweep("cpu-b", slo_p99_ms=80.0, steps_qps=[20, 40])
    res = _cli(a, b, "--out", tmp_path / "r.html", "--target-qps", 10, cwd=tmp_path)
    assert res.returncode == 2
    assert "different SLOs" in res.stderr and "50 ms" in res.stderr and "80 ms" in res.stderr
    assert _only_expected_files(tmp_path, ["cpu-a", "cpu-b"])


def test_cli_bad_catalogue(make_sweep, tmp_path):
    a = make_sweep("cpu-a", steps_qps=[20, 40])
    hw = tmp_path / "hw.toml"
    hw.write_text(CATALOG.replace("power_w = 100", "power_w = 100\ncolour = 'red'"))
    res = _cli(a, "--out", tmp_path / "r.html", "--catalog", hw, cwd=tmp_path)
    assert res.returncode == 2
    assert "'test-cpu-node'" in res.stderr and "unknown key 'colour'" in res.stderr
    assert not (tmp_path / "r.html").exists()


def test_cli_writes_and_says_where(sweeps, tmp_path):
    out = tmp_path / "deep" / "r.html"
    res = _cli(sweeps["cpu-batching"], "--out", out, "--target-qps", 500, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == f"report written to {out.resolve()}"
    assert parse(out.read_text()).sections == SECTIONS
    assert _only_expected_files(out.parent, ["r.html"])  # no temp files left


def test_cli_sizes_from_relative_run_paths(make_sweep, tmp_path):
    # `make demo` passes run folders relative to the repo: sizing reads the steps' histograms
    make_sweep("cpu-rel", steps_qps=[20, 40, 80])
    res = _cli("cpu-rel", "--out", "r.html", "--target-qps", 100, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    facts = parse((tmp_path / "r.html").read_text())
    assert "sizing" in facts.sections
    assert "steps/00/service_time.hdr" in (tmp_path / "r.html").read_text()


def test_summary_max_qps_agrees_with_recorded(sweeps):
    # the synthetic sweep records slo.max_qps itself; the report's recomputation agrees
    for name, path in sweeps.items():
        recorded = json.loads((path / "summary.json").read_text())["slo"]["max_qps"]
        assert recorded == pytest.approx(expected_max_qps(**PROFILES[name], slo_ms=SLO_MS))


def test_interrupted_sweep_with_empty_step_renders_unsized(make_sweep, tmp_path):
    # what `inferops bench --sweep` leaves after Ctrl-C during a step: nothing measured
    path = make_sweep("cpu-int", steps_qps=[20, 40])
    summary = json.loads((path / "summary.json").read_text())
    summary["slo"]["steps"][-1].update(
        achieved_qps=None, p99_ms=None, error_rate=None, valid=False, ok=False
    )
    summary.update(
        partial=True,
        valid=False,
        passed=False,
        achieved_qps=None,
        validity=["partial run: interrupted (SIGINT)"],
    )
    (path / "summary.json").write_text(json.dumps(summary))
    # no capacity step to copy up: the top-level series is a bare header
    header = (path / "timeseries.csv").read_text().splitlines()[0]
    (path / "timeseries.csv").write_text(header + "\n")
    out = tmp_path / "r.html"
    write_report(load_runs([path]), Options(target_qps=TARGET), out)
    html = out.read_text()
    rows = sum(
        len((path / s["dir"] / "timeseries.csv").read_text().splitlines()) - 1
        for s in summary["slo"]["steps"]
    )
    assert f"{rows} rows, one per second; the sweep&#39;s steps one after another" in html
    facts = parse(html).facts
    assert "partial" in facts[("cpu-int", "refused")][0]
    assert facts[("cpu-int", "valid")] == ["INVALID"]
