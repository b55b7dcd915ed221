"""The private network a fleet lives on: one bridge, NAT out, nothing else.

Each fleet gets a slot number that picks its /24 (``10.231.<slot>.0/24``), its
bridge (``ifops-br<slot>``, holding ``.1``) and its nftables table
(``ip inferops_test_<slot>``, masquerading the subnet). systemd-nspawn's
``--network-bridge`` then gives every container its own veth on that bridge.
Containers reach Debian and PyPI only through this NAT, which needs
``net.ipv4.ip_forward=1``; the value found before the first fleet came up is
kept in the cache dir and restored when the last fleet goes down.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


@dataclass(frozen=True)
class Subnet:
    slot: int

    @property
    def prefix(self) -> str:
        return f"10.231.{self.slot}"

    @property
    def cidr(self) -> str:
        return f"{self.prefix}.0/24"

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"

    @property
    def bridge(self) -> str:
        return f"ifops-br{self.slot}"

    @property
    def nft_table(self) -> str:
        return f"inferops_test_{self.slot}"

    def host_ip(self, index: int) -> str:
        return f"{self.prefix}.{10 + index}"


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def link_exists(name: str) -> bool:
    return _run("ip", "link", "show", "dev", name, check=False).returncode == 0


def nft_table_exists(table: str) -> bool:
    return _run("nft", "list", "table", "ip", table, check=False).returncode == 0


def up(net: Subnet) -> None:
    """Create the bridge and NAT for ``net`` (call ``down`` first to clear leftovers)."""
    _run("ip", "link", "add", "name", net.bridge, "type", "bridge")
    _run("ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge)
    _run("ip", "link", "set", net.bridge, "up")
    ruleset = f"""
table ip {net.nft_table} {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {net.cidr} ip daddr != {net.cidr} masquerade
    }}
}}
"""
    subprocess.run(["nft", "-f", "-"], input=ruleset, check=True, text=True, capture_output=True)


def delete_link(name: str) -> None:
    """Delete an interface if it exists (a veth takes its peer with it)."""
    if link_exists(name):
        _run("ip", "link", "del", name, check=False)


def down(net: Subnet) -> None:
    """Remove the bridge, veths still on it, and the nft table; safe on a clean slate."""
    if link_exists(net.bridge):
        # The kernel drops a dead container's veth only when its netns is freed,
        # which can lag; a stale one would block the next boot's veth name.
        listed = _run("ip", "-o", "link", "show", "master", net.bridge, check=False).stdout
        for line in listed.splitlines():
            delete_link(line.split(":")[1].strip().split("@")[0])
        _run("ip", "link", "del", net.bridge)
    if nft_table_exists(net.nft_table):
        _run("nft", "delete", "table", "ip", net.nft_table)


def enable_forwarding(state_file: Path) -> None:
    """Turn on IPv4 forwarding, remembering the old value unless a fleet already did."""
    if not state_file.exists():
        state_file.write_text(json.dumps({"ip_forward": IP_FORWARD.read_text().strip()}))
    IP_FORWARD.write_text("1\n")


def restore_forwarding(state_file: Path) -> None:
    """Put back the value saved by ``enable_forwarding`` (call when no fleet remains)."""
    if state_file.exists():
        IP_FORWARD.write_text(json.loads(state_file.read_text())["ip_forward"] + "\n")
        state_file.unlink()
