"""`inferops monitoring render`: the files, checked by the real promtool and amtool."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from inferops.monitoring import metricnames as m
from inferops.monitoring.configs import ConfigKnobs
from inferops.monitoring.render import render as render_files
from inferops.monitoring.rules import DEFAULTS, Knobs
from inferops.monitoring.targets import LOCALHOST
from tests.monitoring.conftest import ROOT, promtool, render, render_process, sweep_run, tool

RULE_FILES = ("inference", "host", "gpu")
ALL_LIMITS = {
    "p99_latency_ms": 500,
    "min_qps": 100,
    "max_error_rate": 0.01,
    "min_success_rate": 0.99,
    "max_cpu_percent": 85,
    "max_memory_percent": 85,
    "max_gpu_util_percent": 95,
    "max_gpu_memory_percent": 90,
    "max_gpu_power_watts": 300,
    "max_gpu_temp_celsius": 85,
    # the LLM serving issue's keys: alerted on whenever the parsed thresholds carry them
    "p99_ttft_ms": 200,
    "p99_tpot_ms": 40,
}


def _alerts(out, name):
    doc = yaml.safe_load((out / "rules" / f"{name}.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _check_all(out, names):
    result = promtool("check", "config", "prometheus.yml", cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    rule_paths = [f"rules/{n}.yml" for n in names]
    result = promtool("check", "rules", *rule_paths, cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = [f"{n}_test.yml" for n in names]
    result = promtool("test", "rules", *tests, cwd=out / "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_default_render_passes_promtool_and_amtool(tmp_path):
    out = tmp_path / "mon"
    assert (
        render(out, "--thresholds", str(ROOT / "thresholds.toml"), "--webhook", "http://h/x") == 0
    )
    assert sorted(p.name for p in (out / "rules").iterdir()) == sorted(
        [f"{n}.yml" for n in RULE_FILES] + [f"{n}_test.yml" for n in RULE_FILES]
    )
    _check_all(out, RULE_FILES)
    result = subprocess_run([tool("amtool"), "check-config", str(out / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    # the seeds' alert table, from thresholds.toml
    exprs = {a["alert"]: a["expr"] for n in RULE_FILES for a in _alerts(out, n)}
    assert exprs["InferenceP99LatencyHigh"] == (
        "histogram_quantile(0.99, sum by (le, instance, model) "
        "(rate(inferops_request_duration_seconds_bucket[5m]))) > 0.5"
    )
    assert exprs["InferenceQPSLow"].endswith("< 100")
    assert exprs["InferenceErrorRateHigh"].endswith("> 0.01")
    assert exprs["InferenceSuccessRateLow"].endswith("< 0.99")
    assert (
        exprs["HostCPUHigh"].endswith("> 85") and "node_cpu_seconds_total" in exprs["HostCPUHigh"]
    )
    assert exprs["HostMemoryHigh"].endswith("> 85")
    # GPU limits are commented out in thresholds.toml: only the limit-free GPU alerts
    assert {"GPUXidError", "GPUClockThrottled"} <= set(exprs)
    assert "GPUTemperatureHigh" not in exprs
    assert "InferenceTTFTHigh" not in exprs


def subprocess_run(cmd):
    import subprocess

    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_every_alert_with_every_key_fires_and_stays_quiet(tmp_path):
    """All thresholds (GPU and LLM keys too) and a capacity run: every rendered alert has a
    promtool case that fires on breaching series and one that stays quiet on healthy ones."""
    out = tmp_path / "mon"
    cap = sweep_run(tmp_path / "sweep")
    from inferops.monitoring.capacity import read_capacity

    render_files(
        out,
        hosts=[LOCALHOST],
        limits=dict(ALL_LIMITS),
        capacities=[read_capacity(cap)],
        knobs=Knobs(),
        config_knobs=ConfigKnobs(),
        alertmanagers=["127.0.0.1:9093"],
    )
    names = (*RULE_FILES, "capacity")
    result = _check_all(out, names)
    assert "SUCCESS" in result.stdout
    alerts = [a["alert"] for n in names for a in _alerts(out, n)]
    assert sorted(alerts) == sorted(DEFAULTS), "every alert rendered once"
    for name in names:
        tests = yaml.safe_load((out / "rules" / f"{name}_test.yml").read_text())["tests"]
        cases = {t["name"] for t in tests}
        for alert in _alerts(out, name):
            assert f"{alert['alert']} fires on a breaching series" in cases
            assert f"{alert['alert']} stays quiet when healthy" in cases
        for t in tests:
            fired = t["alert_rule_test"][-1]["exp_alerts"]
            assert bool(fired) == ("fires" in t["name"])


@pytest.mark.parametrize(
    "alert,change",
    [
        # threshold moved so the breach no longer breaches: the "fires" case must fail
        ("InferenceP99LatencyHigh", ("> 0.5", "> 5")),
        ("HostCPUHigh", ("> 85", "> 99")),
        # threshold moved so healthy breaches: the "stays quiet" case must fail
        ("InferenceErrorRateHigh", ("> 0.01", "> 0.000001")),
        ("GPUXidError", ("> 0", "> -1")),
        # `for` dropped: the "still pending" step of the "fires" case must fail
        ("InferenceP99LatencyHigh", ("for: 5m", "for: 0s")),
    ],
)
def test_rendered_unit_tests_catch_a_wrong_rule(tmp_path, alert, change):
    """The shipped promtool tests are not decorative: a rule edited wrong fails them."""
    out = tmp_path / "mon"
    render_files(
        out,
        hosts=[LOCALHOST],
        limits=dict(ALL_LIMITS),
        capacities=[],
        knobs=Knobs(),
        config_knobs=ConfigKnobs(),
        alertmanagers=["127.0.0.1:9093"],
    )
    name = next(n for n in RULE_FILES if alert in (out / "rules" / f"{n}.yml").read_text())
    path = out / "rules" / f"{name}.yml"
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith(f"alert: {alert}"))
    line = next(i for i in (at + 1, at + 2) if change[0] in lines[i])  # expr, then for
    lines[line] = lines[line].replace(change[0], change[1])
    path.write_text("\n".join(lines) + "\n")
    result = promtool("test", "rules", f"{name}_test.yml", cwd=out / "rules")
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_annotations_link_to_runbook_anchors(tmp_path):
    out = tmp_path / "mon"
    render_files(
        out,
        hosts=[LOCALHOST],
        limits=dict(ALL_LIMITS),
        capacities=[],
        knobs=Knobs(runbook_base="https://git.example/inferops/docs/monitoring.md"),
        config_knobs=ConfigKnobs(),
        alertmanagers=["127.0.0.1:9093"],
    )
    doc = (ROOT / "docs" / "monitoring.md").read_text()
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', doc))
    for name in RULE_FILES:
        for alert in _alerts(out, name):
            ann = alert["annotations"]
            assert ann["summary"] and "{{ $value" in ann["description"]
            base, anchor = ann["runbook_url"].split("#")
            assert base == "https://git.example/inferops/docs/monitoring.md"
            assert anchor in anchors, f"docs/monitoring.md has no anchor {anchor}"
    assert "inferencecapacityheadroomlow" in anchors


def test_knobs_set_for_and_severity(tmp_path):
    out = tmp_path / "mon"
    args = ["--for", "InferenceP99LatencyHigh=90", "--for", "HostCPUHigh=1h30m"]
    args += ["--severity", "HostCPUHigh=critical", "--rate-window", "2m"]
    assert render(out, *args) == 0
    alerts = {a["alert"]: a for n in RULE_FILES for a in _alerts(out, n)}
    assert alerts["InferenceP99LatencyHigh"]["for"] == "1m30s"
    assert alerts["HostCPUHigh"]["for"] == "1h30m"
    assert alerts["HostCPUHigh"]["labels"]["severity"] == "critical"
    assert "[2m]" in alerts["InferenceP99LatencyHigh"]["expr"]
    _check_all(out, RULE_FILES)


def test_capacity_rule_names_its_run(tmp_path):
    out = tmp_path / "mon"
    run_dir = sweep_run(tmp_path / "runs" / "cpu-sweep", max_qps=412.0)
    assert render(out, "--capacity", str(run_dir), "--headroom", "0.25") == 0
    text = (out / "rules" / "capacity.yml").read_text()
    alert = _alerts(out, "capacity")[0]
    assert alert["alert"] == "InferenceCapacityHeadroomLow"
    # (1 - 0.25) x 412 = 309, written into the rule, with its provenance in a comment
    assert alert["expr"].endswith("> 309")
    assert 'profile="cpu-batching"' in alert["expr"]
    comment = next(line for line in text.splitlines() if line.strip().startswith("# from run"))
    assert str(run_dir) in comment and "412 req/s" in comment and "hosts: localhost" in comment
    prom = yaml.safe_load((out / "prometheus.yml").read_text())
    server = next(j for j in prom["scrape_configs"] if j["job_name"] == "inferops")
    assert server["static_configs"][0]["labels"]["profile"] == "cpu-batching"
    _check_all(out, (*RULE_FILES, "capacity"))


def test_each_host_gets_its_profile_and_unmatched_runs_are_named(tmp_path, fleet):
    """Two sweeps: gpu-1 declares capacity_profile a10-batching and gets that run's rule;
    the other run's profile matches no host, which the render says (it does not guess)."""
    out = tmp_path / "mon"
    a10 = sweep_run(tmp_path / "a10", max_qps=900.0, profile="a10-batching")
    cpu = sweep_run(tmp_path / "cpu", max_qps=120.0, profile="cpu-batching")
    result = render_process(out, "--inventory", str(fleet), "--capacity", str(a10), str(cpu))
    assert result.returncode == 0, result.stderr
    assert f"capacity run {cpu} (profile 'cpu-batching') matches no inference host" in (
        result.stderr
    )
    exprs = [a["expr"] for a in _alerts(out, "capacity")]
    assert any('profile="a10-batching"' in e and e.endswith("> 720") for e in exprs)
    assert any('profile="cpu-batching"' in e and e.endswith("> 96") for e in exprs)
    prom = yaml.safe_load((out / "prometheus.yml").read_text())
    server = next(j for j in prom["scrape_configs"] if j["job_name"] == "inferops")
    profiles = {
        s["labels"]["instance"]: s["labels"].get("profile") for s in server["static_configs"]
    }
    assert profiles == {"gpu-1": "a10-batching", "cpu-1": None}
    _check_all(out, (*RULE_FILES, "capacity"))


def test_scrape_targets_come_from_the_inventory(tmp_path, fleet):
    out = tmp_path / "mon"
    # A subprocess: pyinfra's CLI package gevent-patches whichever process imports it.
    result = render_process(out, "--inventory", str(fleet))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"wrote 13 files to {out}"
    prom = yaml.safe_load((out / "prometheus.yml").read_text())
    jobs = {
        j["job_name"]: {s["targets"][0]: s.get("labels", {}) for s in j["static_configs"]}
        for j in prom["scrape_configs"]
    }
    assert set(jobs["inferops"]) == {"10.0.0.11:8000", "10.0.0.21:9000"}
    assert jobs["inferops"]["10.0.0.11:8000"] == {
        "instance": "gpu-1",
        "group": "gpu_nodes",
        "profile": "a10-batching",
    }
    assert set(jobs["triton"]) == {"10.0.0.12:8002"}
    # node_exporter on every host, load generators included
    assert set(jobs["node"]) == {
        "10.0.0.11:9100",
        "10.0.0.21:9101",
        "10.0.0.12:9100",
        "10.0.0.31:9100",
        "10.0.0.41:9100",
    }
    assert jobs["node"]["10.0.0.41:9100"]["group"] == "loadgen"
    # dcgm-exporter where group_data/gpu_nodes.py turns it on
    assert set(jobs["dcgm"]) == {"10.0.0.11:9400", "10.0.0.12:9400"}
    assert set(jobs["prometheus"]) == {"10.0.0.31:9090"}
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "10.0.0.31:9093"
    ]
    ds = yaml.safe_load((out / "provisioning" / "datasources" / "inferops.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://10.0.0.31:9090"
    result = promtool("check", "config", "prometheus.yml", cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr


def test_server_metric_names_match_the_server():
    """The names rules use are the ones inferops/server/metrics.py registers."""
    from inferops.server.metrics import ServerMetrics
    from inferops.server.stats import BatchTiming

    metrics = ServerMetrics("mlp")
    metrics.observe_request("mlp", 200, 0.01)
    metrics.observe_batch(
        BatchTiming(rows=1, waits=[0.001], input_s=0.0, infer_s=0.002, output_s=0.0)
    )
    metrics.queue_depth.labels("mlp").set(0)  # the app binds it to the batcher's length
    exported = {s.name for family in metrics.registry.collect() for s in family.samples}
    server_names = {n for n in m.RAW_METRICS if n.startswith("inferops_")}
    llm = {m.TTFT + "_bucket", m.TPOT + "_bucket"}  # the LLM server (issue 13) exports these
    assert server_names - llm <= exported, server_names - llm - exported


@pytest.mark.parametrize(
    "args,message",
    [
        (["--for", "NoSuchAlert=5m"], "--for NoSuchAlert: unknown alert"),
        (["--for", "HostCPUHigh=soon"], "expected a duration"),
        (["--severity", "HostCPUHigh=page"], "use one of critical, warning, info"),
        (["--rate-window", "20s", "--scrape-interval", "15s"], "at least two scrapes"),
        (["--headroom", "1.5"], "between 0 and 1"),
        (["--webhook", "hooks.local/x"], "expected an http(s):// URL"),
        (["--alertmanager", "no port"], "expected HOST:PORT"),
        (["--scrape-interval", "10s", "--scrape-timeout", "20s"], "must not exceed"),
        (["--inventory", "/nonexistent/inventory.py"], "no such file"),
        (["--thresholds", "/nonexistent.toml"], "thresholds file not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "mon"
    assert render(out, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize(
    "summary,code,message",
    [
        (None, 2, "not a run folder"),
        ({"slo": None}, 2, "not an SLO sweep"),
        ({"slo": {"p99_ms": 50, "max_qps": None}}, 3, "no valid step met the SLO"),
        ({"partial": True}, 3, "partial"),
        ({"valid": False}, 3, "not valid"),
    ],
)
def test_capacity_runs_that_measured_nothing_are_refused(tmp_path, capsys, summary, code, message):
    run_dir = tmp_path / "run"
    if summary is None:
        run_dir.mkdir()
    else:
        sweep_run(run_dir, **summary)
    assert render(tmp_path / "mon", "--capacity", str(run_dir)) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_rerender_replaces_old_files_and_never_touches_a_foreign_folder(tmp_path, capsys):
    out = tmp_path / "mon"
    assert render(out, "--capacity", str(sweep_run(tmp_path / "sweep"))) == 0
    assert (out / "rules" / "capacity.yml").exists()
    assert render(out) == 0
    assert not (out / "rules" / "capacity.yml").exists(), "stale rule file left behind"
    assert "rules/capacity.yml" not in (out / "prometheus.yml").read_text()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    capsys.readouterr()
    assert render(foreign) == 2
    assert "not an earlier render" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["mine.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


def test_last_line_says_where(tmp_path, capsys):
    out = tmp_path / "mon"
    assert render(out) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote 13 files to {out}"


def test_bad_inventory_data_exits_2(tmp_path, fleet):
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(fleet_file.read_text().replace('"0.0.0.0:9101"', '"nine-one-oh-one"'))
    result = render_process(tmp_path / "mon", "--inventory", str(fleet))
    assert result.returncode == 2
    assert "cpu-1: node_exporter_listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_monitoring_without_an_action_exits_2(capsys):
    from inferops.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["monitoring"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("required: ACTION") and len(err.splitlines()) == 1


def test_promtool_present_for_ci():
    assert shutil.which("promtool") and shutil.which("amtool")
