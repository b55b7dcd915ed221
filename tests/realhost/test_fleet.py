"""The test fleet itself: distinct booted hosts, SSH as a sudo user, NAT out, clean teardown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hosts import machine, network, pyinfra_run
from tests.hosts.fleet import Fleet, claim_free_fleet

pytestmark = pytest.mark.realhost

SCRATCH_SLOTS = range(10, 16)  # throwaway fleets for the teardown/crash tests
CLI_SLOT = 16


def _scratch(workdir) -> Fleet:
    return claim_free_fleet("s", SCRATCH_SLOTS, workdir, size=1, log=lambda _: None)


def test_hosts_are_distinct_booted_machines(fleet):
    seen = set()
    for host in fleet.hosts:
        t = fleet.testinfra_host(host)
        identity = (
            t.check_output("hostname"),
            t.file("/etc/machine-id").content_string.strip(),
            t.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1],
        )
        assert identity[0] == host.name
        seen.add(identity)
        assert t.interface("host0").addresses[0] == host.ip
        assert t.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")
        assert t.system_info.distribution == "debian" and t.system_info.release.startswith("12")
        assert t.check_output("id -u") == "0"  # sudo works without a password
    assert len(seen) == len(fleet.hosts)


def test_strict_host_keys_refuse_an_unknown_key(fleet, tmp_path):
    host = fleet.hosts[0]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{host.ip} {fleet.hosts[1].host_key}\n")  # another host's key
    args = [a if "UserKnownHostsFile" not in a else f"UserKnownHostsFile={wrong}"
            for a in fleet.ssh_args(host)]  # fmt: skip
    result = subprocess.run([*args, "true"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_hosts_reach_debian_and_pypi_through_the_nat(fleet):
    t = fleet.testinfra_host(fleet.hosts[0])
    for url in (
        "http://deb.debian.org/debian/dists/bookworm/Release",
        "https://pypi.org/simple/pip/",
    ):
        code = t.check_output(f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 20 {url}")
        assert code == "200", url


def test_pyinfra_cli_runs_an_op_as_root_over_ssh(fleet):
    result = pyinfra_run.run(fleet.inventory_path, "exec", "--", "id", "-un")
    assert result.returncode == 0, result.tail()
    for host in fleet.hosts:
        assert f"[{host.ip}] root" in result.output
    assert result.total.hosts == len(fleet.hosts) and result.total.errors == 0


def _leftovers(fleet: Fleet, host_names: list[str]) -> list[str]:
    found = []
    if network.link_exists(fleet.net.bridge):
        found.append(f"bridge {fleet.net.bridge}")
    if network.nft_table_exists(fleet.net.nft_table):
        found.append(f"nft table {fleet.net.nft_table}")
    found += [f"veth {p.name}" for p in Path("/sys/class/net").iterdir()
              if p.name in {f"vb-{name}" for name in host_names}]  # fmt: skip
    marker = f"--network-bridge={fleet.net.bridge}"
    pids = [p.name for p in Path("/proc").iterdir()
            if p.name.isdigit() and machine.is_nspawn(int(p.name), marker)]  # fmt: skip
    found += [f"nspawn pid {p}" for p in pids]
    mounts = Path("/proc/self/mountinfo").read_text()
    if str(fleet.overlay_dir) in mounts:
        found.append("overlay mounts")
    return found


def test_teardown_removes_machines_network_and_mounts(fleet, tmp_path):
    scratch = _scratch(tmp_path).up()
    pid = scratch.hosts[0].pid
    names = [h.name for h in scratch.hosts]
    assert scratch.ssh(scratch.hosts[0], "hostname").stdout.strip() == names[0]
    live = _leftovers(scratch, names)  # sanity: the probe does see a live fleet
    assert f"veth vb-{names[0]}" in live and f"bridge {scratch.net.bridge}" in live
    scratch.down()
    assert _leftovers(scratch, names) == []
    assert not machine.is_nspawn(pid)
    assert not scratch.state_path.exists()
    # The session fleet is still up, so forwarding must stay on for it.
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"


def test_up_recovers_from_a_crashed_run(tmp_path):
    crashed = _scratch(tmp_path / "a").up()
    stale_pid = crashed.hosts[0].pid
    # While its owner lives, the slot is refused to anyone else ...
    rival = Fleet("s", crashed.net.slot, tmp_path / "b", size=1, log=lambda _: None)
    with pytest.raises(RuntimeError, match="held by another running process"):
        rival.up()
    with pytest.raises(RuntimeError, match="held by another running process"):
        rival.down()  # e.g. `python -m tests.hosts down --slot N` from another shell
    assert machine.is_nspawn(stale_pid)
    # ... a crash drops the lock (as the kernel would) and leaves everything else behind.
    crashed._slot_lock.close()
    # A new process knows nothing of the old one (no state file, new workdir).
    fresh = Fleet("s", crashed.net.slot, tmp_path / "b", size=1, log=lambda _: None)
    try:
        fresh.up()
        assert not machine.is_nspawn(stale_pid)
        assert fresh.ssh(fresh.hosts[0], "sudo -n true").returncode == 0
        state = json.loads(fresh.state_path.read_text())
        assert [h["ip"] for h in state["hosts"]] == [f"10.231.{crashed.net.slot}.10"]
    finally:
        fresh.down()
    assert _leftovers(fresh, ["s0"]) == []


def test_make_hosts_cli_up_status_down(tmp_path):
    """``python -m tests.hosts`` as ``make hosts`` / ``make hosts-down`` run it."""
    cli = [sys.executable, "-m", "tests.hosts"]
    opts = ["--slot", str(CLI_SLOT), "--workdir", str(tmp_path)]
    try:
        up = subprocess.run([*cli, "up", "-n", "1", *opts], cwd=pyinfra_run.REPO,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-1].startswith(f"wrote {tmp_path}")
        assert f"10.231.{CLI_SLOT}.10" in (tmp_path / "fleet.toml").read_text()
        login = subprocess.run(["ssh", "-F", str(tmp_path / "ssh_config"),
                                f"10.231.{CLI_SLOT}.10", "sudo -n hostname"],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert login.stdout.strip() == f"node{CLI_SLOT}n0", login.stderr
        status = subprocess.run([*cli, "status", *opts], cwd=pyinfra_run.REPO,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert f"node{CLI_SLOT}n0" in status.stdout and "running" in status.stdout
    finally:
        down = subprocess.run([*cli, "down", *opts], cwd=pyinfra_run.REPO,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert not network.link_exists(network.Subnet(CLI_SLOT).bridge)
    bad = subprocess.run([*cli, "up", "-n", "0", *opts], cwd=pyinfra_run.REPO,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "--hosts must be between 1 and 50" in bad.stderr
