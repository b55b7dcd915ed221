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
    unit_exposure,
    verify_cpu_node,
    wait_until_idle,
)

# `systemd-analyze security inferops-server` on the Debian 12 test host (systemd 252),
# measured 2026-12-02 after the hardening of issue 8: 1.4 (the unit before it scored 4.2,
# see docs/provisioning.md). Lower is better; loosening the sandbox fails here.
RECORDED_EXPOSURE = 1.4

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
    """Run with ``--diff -v``: pyinfra prints every file it creates, except the token."""
    host = fleet.hosts[0]
    result = deployer.run(CPU_NODE, host, options=("--diff", "-v"))
    assert result.returncode == 0, result.tail()
    assert result.total.errors == 0 and result.total.changed > 0
    token = deployer.token(host)
    assert "Will create" in result.output and "INFEROPS_MODEL_NAME=mlp" in result.output
    assert "/etc/inferops/token (a secret: content not shown)" in result.output
    assert token not in result.output, "the bearer token is in pyinfra's --diff output"
    verify_cpu_node(fleet, host, token)


def test_second_run_changes_nothing(fleet, deployer):
    host = fleet.hosts[0]
    assert_no_changes(deployer.run(CPU_NODE, host))
    verify_cpu_node(fleet, host, deployer.token(host))


def test_server_unit_is_hardened_and_scored(fleet, deployer):
    """The unit really starts under its sandbox, the token reaches it only as a systemd
    credential, and `systemd-analyze security` scores it no worse than recorded."""
    host = fleet.hosts[0]
    t = fleet.testinfra_host(host)
    shown = t.check_output(
        "systemctl show inferops-server -p ProtectProc -p UMask -p ProtectClock "
        "-p ProtectHostname -p ProtectKernelLogs -p RestrictAddressFamilies -p PrivateDevices"
    )
    for expected in ("ProtectProc=invisible", "UMask=0077", "ProtectClock=yes",
                     "ProtectHostname=yes", "ProtectKernelLogs=yes", "PrivateDevices=yes"):  # fmt: skip
        assert expected in shown, shown
    assert "AF_INET" in shown and "AF_NETLINK" not in shown
    # systemd 252 shows LoadCredential as "[unprintable]": read the unit and the process.
    assert "LoadCredential=token:/etc/inferops/token" in t.check_output(
        "systemctl cat inferops-server"
    )
    pid = t.check_output("systemctl show -p MainPID --value inferops-server")
    args = t.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert "--token-file /run/credentials/inferops-server.service/token" in args, args
    token_file = t.file("/etc/inferops/token")
    assert (token_file.user, token_file.group, token_file.mode) == ("root", "root", 0o600)
    denied = t.run("sudo -u inferops cat /etc/inferops/token")
    assert denied.rc != 0  # the service user cannot read the file itself ...
    assert t.service("inferops-server").is_running  # ... yet the server has its token
    exposure = unit_exposure(fleet, host, "inferops-server")
    print(f"systemd-analyze security inferops-server: {exposure}")
    assert exposure <= RECORDED_EXPOSURE, (
        f"exposure {exposure} is worse than the recorded {RECORDED_EXPOSURE}"
    )


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
