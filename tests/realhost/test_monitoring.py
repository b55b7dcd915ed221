"""``deploys/monitoring.py`` on a booted host, with ``deploys/cpu_node.py`` on another, by the
real pyinfra CLI: Prometheus and Alertmanager (Debian packages) install and run, the
inference host's targets are ``up`` as Prometheus itself reports them, a second run changes
nothing, and a rules-only change is a reload (same process), never a restart.

Grafana is off here (``grafana = false``): no Grafana package can be had on these hosts;
its component is covered at the operation level (tests/deploy/cases/grafana, fake hosts).
"""

from __future__ import annotations

import json
import shlex
import time

import pytest

from tests.hosts.pyinfra_run import REPO
from tests.realhost.deploying import CPU_NODE, assert_no_changes

MONITORING = REPO / "deploys/monitoring.py"
pytestmark = pytest.mark.realhost


@pytest.fixture(scope="module")
def monitored(fleet, deployer):
    """host 0: a CPU inference node; host 1: the monitoring host. Returns the fleet file."""
    node, monitor = fleet.hosts[0], fleet.hosts[1]
    fleet_file = deployer.write_fleet(
        "monitoring.toml",
        data={"grafana": False},
        host_groups={node.name: ("cpu_nodes",), monitor.name: ("monitoring",)},
        hosts=[node, monitor],  # the session fleet's other hosts are lb_fleet's
    )
    result = deployer.run(CPU_NODE, node, fleet_file=fleet_file)
    assert result.returncode == 0, result.tail()
    return fleet_file


def _api(fleet, host, path: str, query: str | None = None) -> dict:
    encoded = f"-G --data-urlencode {shlex.quote('query=' + query)} " if query else ""
    done = fleet.ssh(host, f"curl -fsS {encoded}'http://127.0.0.1:9090{path}'", check=False)
    assert done.returncode == 0, f"{path}: exit {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def _target_health(fleet, host, instance: str) -> dict[str, str]:
    active = _api(fleet, host, "/api/v1/targets?state=active")["data"]["activeTargets"]
    return {t["labels"]["job"]: t["health"] for t in active if t["labels"]["instance"] == instance}


def _prometheus_pid(fleet, host) -> str:
    return fleet.ssh(host, "systemctl show -p MainPID --value prometheus").stdout.strip()


def test_monitoring_deploy_scrapes_the_inference_host(fleet, deployer, monitored):
    node, monitor = fleet.hosts[0], fleet.hosts[1]
    result = deployer.run(MONITORING, monitor, fleet_file=monitored)
    assert result.returncode == 0, result.tail()
    for unit in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
        state = fleet.ssh(monitor, f"systemctl is-active {unit}", check=False).stdout.strip()
        assert state == "active", f"{monitor.name}: {unit} is {state}"
    # Loopback by default: nothing listens on the fleet network for Prometheus/Alertmanager.
    listening = fleet.ssh(monitor, "ss -Hltn '( sport = :9090 or sport = :9093 )'").stdout
    assert "127.0.0.1:9090" in listening and "127.0.0.1:9093" in listening, listening
    assert "0.0.0.0:909" not in listening and "*:909" not in listening, listening

    deadline = time.monotonic() + 90  # a few 15 s scrape intervals
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = _target_health(fleet, monitor, node.name)
        if health.get("inferops") == "up" and health.get("node") == "up":
            break
        time.sleep(3)
    assert health.get("inferops") == "up", health
    assert health.get("node") == "up", health
    # The promtool-checked rules are the ones loaded.
    groups = _api(fleet, monitor, "/api/v1/rules")["data"]["groups"]
    alerts = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert {"InferenceP99LatencyHigh", "HostCPUHigh", "InferenceQPSLow"} <= alerts, alerts
    up = _api(fleet, monitor, "/api/v1/query", query=f'up{{instance="{node.name}"}}')
    assert {s["metric"]["job"]: s["value"][1] for s in up["data"]["result"]} == {
        "inferops": "1",
        "node": "1",
    }


def test_second_run_changes_nothing(fleet, deployer, monitored):
    result = deployer.run(MONITORING, fleet.hosts[1], fleet_file=monitored)
    assert_no_changes(result)


def test_a_rules_change_is_a_reload_not_a_restart(fleet, deployer, monitored, tmp_path):
    monitor = fleet.hosts[1]
    pid = _prometheus_pid(fleet, monitor)
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text("p99_latency_ms = 321\n")
    changed = deployer.write_fleet(
        "monitoring-321.toml",
        data={"grafana": False, "monitoring_thresholds": str(thresholds)},
        host_groups={fleet.hosts[0].name: ("cpu_nodes",), monitor.name: ("monitoring",)},
        hosts=[fleet.hosts[0], monitor],
    )
    result = deployer.run(MONITORING, monitor, fleet_file=changed)
    assert result.returncode == 0, result.tail()
    assert any("promtool" in name for name in result.changed_ops), result.changed_ops
    assert not any("Restart" in name for name in result.changed_ops), result.changed_ops
    assert _prometheus_pid(fleet, monitor) == pid  # the same process: reloaded
    groups = _api(fleet, monitor, "/api/v1/rules")["data"]["groups"]
    p99 = [r for g in groups for r in g["rules"] if r["name"] == "InferenceP99LatencyHigh"]
    assert p99 and "0.321" in p99[0]["query"], p99
