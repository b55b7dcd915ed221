"""A fleet of N booted Debian 12 hosts on a private subnet, reachable over SSH.

``Fleet(name, slot, workdir, size).up()`` builds (or reuses) the cached rootfs,
clears anything a crashed run with the same slot left behind, brings up the
network, boots the hosts and waits for SSH. ``down()`` undoes all of it.

The workdir receives what a user or a test needs to reach the hosts:

- ``id_ed25519`` / ``id_ed25519.pub``: the fleet's SSH key (user ``deploy``,
  passwordless sudo);
- ``known_hosts``: every host's generated ed25519 host key;
- ``ssh_config``: ``ssh -F <workdir>/ssh_config 10.231.<slot>.10`` just works;
- ``inventory.py``: a standalone pyinfra inventory (group ``inferops_test``);
- ``fleet.toml``: the same hosts in the data format ``inventory.py`` at the
  repository root reads through ``INFEROPS_FLEET``;
- ``state.json``: what ``down``/``status`` need after the process that ran
  ``up`` has gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.hosts import cpuquota, machine, network, rootfs
from tests.hosts.machine import Host
from tests.hosts.rootfs import DEPLOY_USER

REQUIRED_TOOLS = ("debootstrap", "systemd-nspawn", "nft", "ip", "ssh", "ssh-keygen", "mount")


def missing_prerequisites() -> list[str]:
    """Why this machine cannot run a fleet, as a list of reasons (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (nspawn, overlay mounts, bridges and nftables need root)")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        problems.append(f"missing tools: {', '.join(missing)} (run `make system-deps` as root)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("kernel has no overlay filesystem")
    quota_problem = cpuquota.available()
    if quota_problem:
        problems.append(f"no CPU quotas for test hosts: {quota_problem}")
    return problems


def prerequisite_verdict(problems: list[str], euid: int, env: dict[str, str]) -> str:
    """``run``, ``skip`` or ``fail`` for the real-host tests given ``missing_prerequisites()``.

    Skipping is allowed only on a developer box that is neither root nor CI;
    with ``CI=true`` or as root, anything missing is a failure to fix.
    """
    if not problems:
        return "run"
    in_ci = env.get("CI", "").lower() in ("1", "true", "yes")
    return "skip" if euid != 0 and not in_ci else "fail"


def _resolv_conf() -> str:
    # The host's resolver is reached through the NAT like any other address.
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        lines = []
    servers = [ln for ln in lines if ln.startswith("nameserver") and "127." not in ln]
    return "\n".join(servers or ["nameserver 1.1.1.1"]) + "\n"


def claim_free_fleet(
    name: str, slots: range, workdir: Path, size: int, log=print, cpu_quota_pct=None
) -> Fleet:
    """A Fleet on the first slot in ``slots`` that no other live process holds."""
    for slot in slots:
        fleet = Fleet(name, slot, workdir, size=size, log=log, cpu_quota_pct=cpu_quota_pct)
        if fleet.claim_slot():
            return fleet
    raise RuntimeError(f"every fleet slot in {slots.start}..{slots.stop - 1} is in use")


class Fleet:
    """``cpu_quota_pct``: cap every host at that percent of one core from boot (None: no
    cap); ``set_cpu_quota`` changes one host's cap while it runs (``tests.hosts.cpuquota``).
    """

    def __init__(
        self,
        name: str,
        slot: int,
        workdir: Path,
        size: int = 1,
        log=print,
        cpu_quota_pct: float | None = None,
    ):
        self.name = name
        self.net = network.Subnet(slot)
        self.workdir = Path(workdir)
        self.size = size
        self.log = log
        self.cpu_quota_pct = cpu_quota_pct
        self.hosts: list[Host] = []
        self._slot_lock = None

    # --- where things live -------------------------------------------------
    @property
    def overlay_dir(self) -> Path:
        return rootfs.cache_root() / "fleets" / f"slot{self.net.slot}"

    @property
    def key_path(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def inventory_path(self) -> Path:
        return self.workdir / "inventory.py"

    @property
    def fleet_toml(self) -> Path:
        return self.workdir / "fleet.toml"

    @property
    def state_path(self) -> Path:
        return self.workdir / "state.json"

    @staticmethod
    def _forward_state() -> Path:
        return rootfs.cache_root() / "fleets" / "ip_forward.json"

    # --- lifecycle ----------------------------------------------------------
    def up(self) -> Fleet:
        problems = missing_prerequisites()
        if problems:
            raise RuntimeError("cannot boot test hosts: " + "; ".join(problems))
        lower = rootfs.ensure_rootfs(log=self.log)
        if not self.claim_slot():
            raise RuntimeError(
                f"slot {self.net.slot} ({self.net.cidr}) is held by another running process "
                "(a pytest session or benchmark); stop it or use another slot"
            )
        self.cleanup_stale()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.overlay_dir.mkdir(parents=True, exist_ok=True)
        self._make_key()
        network.up(self.net)
        network.enable_forwarding(self._forward_state())
        pubkey = (self.workdir / "id_ed25519.pub").read_text()
        resolv = _resolv_conf()
        # The slot is in the machine name: nspawn names each host's veth vb-<machine>, and
        # fleets on other slots (another pytest session, `make hosts`) must never share one.
        self.hosts = [
            Host(name=f"{self.name}{self.net.slot}n{i}", ip=self.net.host_ip(i),
                 dir=str(self.overlay_dir / f"{self.name}{self.net.slot}n{i}"))
            for i in range(self.size)
        ]  # fmt: skip
        too_long = [h.name for h in self.hosts if len(f"vb-{h.name}") > 15]
        if too_long:
            raise ValueError(f"host names {too_long} make veth names over 15 characters")
        try:
            for host in self.hosts:
                network.delete_link(f"vb-{host.name}")  # left by a crash, off any bridge
                machine.prepare(host, lower, self.net.gateway, pubkey, resolv)
                group = cpuquota.create(self.net.slot, host.name)
                cpuquota.set_quota(self.net.slot, host.name, self.cpu_quota_pct)
                machine.boot(host, self.net.bridge, cgroup_procs=group / "cgroup.procs")
                self._save_state()  # after each boot, so a crash mid-way is recoverable
            with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
                list(pool.map(machine.wait_ssh, self.hosts))
            self._write_access_files()
            for host in self.hosts:
                self._wait_login(host)
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Power off every host, unmount overlays, remove network and state."""
        if not self.claim_slot():
            raise RuntimeError(
                f"slot {self.net.slot} ({self.net.cidr}) is held by another running process; "
                "it takes its fleet down itself"
            )
        if not self.hosts and self.state_path.exists():
            self.load_state()
        with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
            list(pool.map(lambda h: machine.stop(h.pid), self.hosts))
        self.cleanup_stale()
        self.state_path.unlink(missing_ok=True)
        self.hosts = []
        if self._slot_lock is not None:
            self._slot_lock.close()
            self._slot_lock = None

    def claim_slot(self) -> bool:
        """Take this slot's lock for the life of this process; False if another holds it.

        A crashed process drops its lock with it, so whatever is left on a slot we
        can lock is stale and safe to clear. ``make hosts`` exits after booting and
        so never holds one: its slot (0) is simply replaced by the next ``up``.
        """
        if self._slot_lock is not None:
            return True
        locks = rootfs.cache_root() / "fleets"
        locks.mkdir(parents=True, exist_ok=True)
        handle = open(locks / f"slot-{self.net.slot}.lock", "w")  # held until down()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._slot_lock = handle
        return True

    def cleanup_stale(self) -> None:
        """Remove whatever a previous (possibly crashed) run of this slot left behind."""
        marker = f"--network-bridge={self.net.bridge}"
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and machine.is_nspawn(int(entry.name), marker):
                machine.stop(int(entry.name))
        machine.unmount_under(self.overlay_dir)
        shutil.rmtree(self.overlay_dir, ignore_errors=True)
        if cpuquota.available() is None:
            cpuquota.remove_slot(self.net.slot)
        network.down(self.net)
        if not any(p.name.startswith("ifops-br") for p in Path("/sys/class/net").iterdir()):
            network.restore_forwarding(self._forward_state())

    # --- state shared with `python -m tests.hosts down|status` ---------------
    def _save_state(self) -> None:
        state = {
            "name": self.name,
            "slot": self.net.slot,
            "hosts": [h.as_dict() for h in self.hosts],
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def load_state(self) -> None:
        state = json.loads(self.state_path.read_text())
        self.hosts = [Host(**h) for h in state["hosts"]]

    def set_cpu_quota(self, host: Host, percent: float | None) -> None:
        """Cap ``host`` at ``percent`` of one core now (None: lift the cap)."""
        cpuquota.set_quota(self.net.slot, host.name, percent)

    def cpu_quota(self, host: Host) -> float | None:
        return cpuquota.quota(self.net.slot, host.name)

    def cpu_throttled_periods(self, host: Host) -> int:
        return cpuquota.throttled_periods(self.net.slot, host.name)

    def running(self) -> list[Host]:
        return [h for h in self.hosts if h.pid and machine.is_nspawn(h.pid)]

    # --- access -------------------------------------------------------------
    def _make_key(self) -> None:
        for suffix in ("", ".pub"):
            Path(f"{self.key_path}{suffix}").unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"inferops-{self.name}",
             "-f", str(self.key_path)],
            check=True,
        )  # fmt: skip

    def ssh_args(self, host: Host) -> list[str]:
        return [
            "ssh", "-i", str(self.key_path), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5",
            f"{DEPLOY_USER}@{host.ip}",
        ]  # fmt: skip

    def ssh(self, host: Host, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``command`` on ``host`` as ``deploy`` (prefix ``sudo`` yourself)."""
        return subprocess.run(
            [*self.ssh_args(host), command], capture_output=True, text=True, check=check,
            timeout=120,
        )  # fmt: skip

    def _wait_login(self, host: Host, timeout: float = 30.0) -> None:
        # The banner can come before PAM/user sessions work; wait for a real login.
        deadline = time.monotonic() + timeout
        while True:
            result = self.ssh(host, "sudo -n true", check=False)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name}: ssh login failed: {result.stderr.strip()}")
            time.sleep(0.5)

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    def testinfra_host(self, host: Host):
        """A testinfra host over OpenSSH (strict host keys), commands run via sudo."""
        import testinfra

        return testinfra.get_host(f"ssh://{host.ip}", ssh_config=str(self.ssh_config), sudo=True)

    def _write_access_files(self) -> None:
        self.known_hosts.write_text("".join(f"{h.ip} {h.host_key}\n" for h in self.hosts))
        self._save_state()
        self.ssh_config.write_text(
            f"Host {self.net.prefix}.*\n"
            f"    User {DEPLOY_USER}\n"
            f"    IdentityFile {self.key_path}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {self.known_hosts}\n"
            "    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n"
            "    ConnectTimeout 5\n"
        )
        host_data = {
            "ssh_user": DEPLOY_USER,
            "ssh_key": str(self.key_path),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "yes",
            "_sudo": True,
        }
        lines = [
            '"""Standalone pyinfra inventory for the test fleet (written by tests.hosts)."""',
            "",
            "inferops_test = [",
            *(f"    ({h.ip!r}, {host_data!r})," for h in self.hosts),
            "]",
            "",
        ]
        self.inventory_path.write_text("\n".join(lines))
        self.write_fleet_toml(self.fleet_toml)

    def write_fleet_toml(
        self,
        path: Path,
        groups: tuple[str, ...] = ("cpu_nodes",),
        data: dict | None = None,
        host_groups: dict[str, tuple[str, ...]] | None = None,
        host_data: dict[str, dict] | None = None,
        hosts: list[Host] | None = None,
    ) -> Path:
        """Write the hosts in the ``INFEROPS_FLEET`` format read by the repo's inventory.py.

        ``groups`` applies to every host unless ``host_groups[name]`` says otherwise;
        ``data`` becomes ``[defaults.data]`` and ``host_data[name]`` a host's ``[hosts.data]``;
        ``hosts`` limits the file to some of the fleet.
        """
        out = [
            "# Test fleet written by tests.hosts; see docs/test-hosts.md.",
            "[defaults]",
            f"ssh_user = {_toml(DEPLOY_USER)}",
            "sudo = true",
            f"ssh_key = {_toml(str(self.key_path))}",
            f"ssh_known_hosts_file = {_toml(str(self.known_hosts))}",
            'ssh_strict_host_key_checking = "yes"',
        ]
        if data:
            out += ["", "[defaults.data]", *(f"{k} = {_toml(v)}" for k, v in data.items())]
        for host in self.hosts if hosts is None else hosts:
            member_of = (host_groups or {}).get(host.name, groups)
            out += [
                "",
                "[[hosts]]",
                f"name = {_toml(host.name)}",
                f"address = {_toml(host.ip)}",
                f"groups = {_toml(list(member_of))}",
            ]
            extra = (host_data or {}).get(host.name)
            if extra:
                out += ["[hosts.data]", *(f"{k} = {_toml(v)}" for k, v in extra.items())]
        path.write_text("\n".join(out) + "\n")
        return path


def _toml(value) -> str:
    """A TOML literal for the plain values fleet files hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")
