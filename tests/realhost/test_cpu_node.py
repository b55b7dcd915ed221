"""``deploys/cpu_node.py`` with its defaults, run by the real pyinfra CLI on booted hosts.

The tests share one fleet and run in file order, each building on the last:
host 0 refuses bad data untouched, then gets a full uninterrupted deploy that a
second run leaves alone; host 1 has its deploy killed mid-install and must
converge on the next run, and a third run must then be a no-op.
"""

from __future__ import annotations

import pytest

from tests.realhost.deploying import (
    CPU_NODE,
    assert_no_changes,
    verify_cpu_node,
    wait_until_idle,
)

pytestmark = pytest.mark.realhost


def _untouched(fleet, host) -> list[str]:
    """Paths a deploy would have created that exist on the host (should be none)."""
    found = fleet.ssh(
        host, "ls -d /etc/inferops /opt/inferops /var/lib/inferops 2>/dev/null || true"
    )
    return found.stdout.split()


def test_bad_data_is_refused_before_any_change(fleet, deployer):
    host = fleet.hosts[0]
    assert _untouched(fleet, host) == []
    packages = fleet.ssh(host, "dpkg-query -W").stdout
    bad = deployer.write_fleet("bad.toml", host_data={host.name: {"server_port": "8000"}})
    result = deployer.run(CPU_NODE, host, fleet_file=bad)
    assert result.returncode == 2, result.tail()
    assert f"{host.name}: server_port: expected an integer" in result.output
    assert result.ops == {}  # refused before any operation ran
    assert _untouched(fleet, host) == []
    assert fleet.ssh(host, "dpkg-query -W").stdout == packages


def test_bad_command_line_data_is_refused_too(fleet, deployer):
    host = fleet.hosts[0]
    result = deployer.run(CPU_NODE, host, options=("--data", "server_max_batch_size=lots"))
    assert result.returncode != 0, result.tail()
    assert f"{host.name}: server_max_batch_size" in result.output
    assert result.ops == {}
    assert _untouched(fleet, host) == []


def test_fresh_deploy_serves_the_model_and_metrics(fleet, deployer):
    host = fleet.hosts[0]
    result = deployer.run(CPU_NODE, host)
    assert result.returncode == 0, result.tail()
    assert result.total.errors == 0 and result.total.changed > 0
    verify_cpu_node(fleet, host, deployer.token(host))


def test_second_run_changes_nothing(fleet, deployer):
    host = fleet.hosts[0]
    assert_no_changes(deployer.run(CPU_NODE, host))
    verify_cpu_node(fleet, host, deployer.token(host))


def test_deploy_killed_mid_install_converges_on_rerun(fleet, deployer):
    host = fleet.hosts[1]
    output, changes = deployer.run_and_kill(CPU_NODE, host, during="Install server requirements")
    assert changes > 0, output  # it really had changed the host before dying
    t = fleet.testinfra_host(host)
    assert not t.service("inferops-server").is_running  # ... and really was cut short
    wait_until_idle(fleet, host)

    rerun = deployer.run(CPU_NODE, host)
    assert rerun.returncode == 0, rerun.tail()
    assert rerun.total.errors == 0 and rerun.total.changed > 0
    verify_cpu_node(fleet, host, deployer.token(host))

    assert_no_changes(deployer.run(CPU_NODE, host))
