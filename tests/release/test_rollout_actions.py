"""The commands the rollout's real effects run (``subprocess.run`` captured, nothing run)."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from inferops.release import actions


@pytest.fixture()
def ran(monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        if "bench" in cmd:
            out = cmd[cmd.index("--out") + 1]
            from pathlib import Path

            Path(out).mkdir(parents=True)
            (Path(out) / "summary.json").write_text(
                json.dumps({"latency_ms": {"p99": 9.5}, "error_rate": 0.0, "achieved_qps": 49.8})
            )
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    return calls


def _fleet(tmp_path):
    return actions.PyinfraFleet(
        inventory="inventory.py",
        node_deploy="deploys/cpu_node.py",
        lb_deploy="deploys/loadbalancer.py",
        overrides={"v2-abc": {"server_model_version": "v2", "server_model_source": "/m/new.onnx"}},
        lb_limit="lb-1",
        log_dir=tmp_path / "logs",
    )


def test_the_new_version_is_the_inventory_plus_two_overrides(ran, tmp_path):
    _fleet(tmp_path).deploy("cpu-1", "v2-abc")
    cmd = ran[-1][0]
    assert cmd[:3] == [sys.executable, "-m", "pyinfra"]  # this venv's, whatever PATH says
    assert cmd[3:8] == ["-y", "inventory.py", "deploys/cpu_node.py", "--limit", "cpu-1"]
    assert cmd[8:] == [
        "--data", 'server_model_version="v2"', "--data", 'server_model_source="/m/new.onnx"'
    ]  # fmt: skip


def test_the_previous_version_is_the_inventory_as_written(ran, tmp_path):
    _fleet(tmp_path).deploy("cpu-1", "0a1b2c3d4e5f")
    assert "--data" not in ran[-1][0]


def test_full_weights_are_the_inventorys_own_balancer(ran, tmp_path):
    fleet = _fleet(tmp_path)
    fleet.set_weights({"cpu-1": 10, "cpu-2": 100})
    cmd = ran[-1][0]
    assert cmd[cmd.index("--data") + 1] == 'lb_weights={"cpu-1": 10, "cpu-2": 100}'
    fleet.set_weights({"cpu-1": 100, "cpu-2": 100})
    assert "--data" not in ran[-1][0]  # a plain run: a later plain run changes nothing
    assert len(list((tmp_path / "logs").iterdir())) == 2


def test_the_token_goes_to_bench_through_the_environment(ran, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    load = actions.BenchLoad(
        out_root=tmp_path / "runs",
        node_url={"cpu-1": "http://10.0.0.1:8000"},
        lb_url="http://10.0.0.9:80",
        model="mlp",
        token_files={"cpu-1": str(token), None: str(token)},
    )
    result = load.load_test("canary alone", "cpu-1", 50.0)
    cmd, kwargs = ran[-1]
    assert "s3cret-token" not in " ".join(cmd)
    assert kwargs["env"]["INFEROPS_TOKEN"] == "s3cret-token"
    assert cmd[cmd.index("--target") + 1] == "http://10.0.0.1:8000"
    assert (result.p99_ms, result.achieved_qps, result.exit_code) == (9.5, 49.8, 0)
    load.load_test("step 50", None, 125.0)
    assert ran[-1][0][ran[-1][0].index("--target") + 1] == "http://10.0.0.9:80"


def test_an_invalid_bench_run_says_why_and_passes_the_lateness_criterion(monkeypatch, tmp_path):
    """Exit 3 from bench: the summary's validity reasons travel with the result (the
    rollout's log says why a measurement was repeated); --late-tolerance-ms reaches bench."""
    from pathlib import Path

    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True)
        summary = {"latency_ms": {"p99": 61.8}, "error_rate": 0.0, "achieved_qps": 37.5,
                   "valid": False, "validity": ["load generator limited: 1.40 % late sends"]}  # fmt: skip
        (out / "summary.json").write_text(json.dumps(summary))
        return SimpleNamespace(returncode=3, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    load = actions.BenchLoad(
        out_root=tmp_path / "runs", node_url={"cpu-1": "http://10.0.0.1:8000"},
        lb_url="http://10.0.0.9:80", model="mlp", extra_args=["--late-tolerance-ms", "100"],
    )  # fmt: skip
    result = load.load_test("baseline", "cpu-1", 40.0)
    assert calls[-1][calls[-1].index("--late-tolerance-ms") + 1] == "100"
    assert result.exit_code == 3
    assert result.evidence["invalid_because"] == ["load generator limited: 1.40 % late sends"]


def test_a_breach_proven_despite_the_generator_travels_with_the_result(monkeypatch, tmp_path):
    """Exit 1 from a run its generator limited: the proof's words reach the rollout's log."""
    from pathlib import Path

    reason = "P99 over 400 ms proven despite the late sends: 450 of 1656 answers ..."

    def fake_run(cmd, **kwargs):
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True)
        summary = {"latency_ms": {"p99": 2005.1}, "error_rate": 0.0, "achieved_qps": 160.2,
                   "valid": False, "validity": ["load generator limited: 1.53 % late sends"],
                   "breach_proven": {"service_over": 450, "needed": 26, "reason": reason}}  # fmt: skip
        (out / "summary.json").write_text(json.dumps(summary))
        return SimpleNamespace(returncode=1, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    load = actions.BenchLoad(
        out_root=tmp_path / "runs", node_url={}, lb_url="http://10.0.0.9:80", model="mlp"
    )
    result = load.load_test("step 75", None, 163.0)
    assert result.exit_code == 1 and result.invalid_because == ()
    assert result.evidence["breach_proven"] == reason
