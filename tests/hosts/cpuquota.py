"""CPU quotas for test hosts: each host's nspawn runs in its own cgroup with a CFS quota.

``systemd-nspawn --property=CPUQuota=25%`` needs a systemd manager to create the
scope, and these hosts boot with ``--register=no`` on machines that may have none.
So the quota is set on a cgroup made here (``inferops-fleets/slot<N>/<host>`` under
the cpu controller) that nspawn is started in: every process of the container
inherits it, and the kernel caps the whole container at ``percent`` of one core
(``cpu.max`` on cgroup v2, ``cpu.cfs_quota_us`` on v1), as ``CPUQuota=`` would.

A quota can be changed while the host runs (``set_quota``), so a deploy can run at
full speed and the measurement after it under the quota.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# 10 ms periods: a throttled host stalls at most ~7.5 ms at 25 %, not 75 ms (the default
# 100 ms period would put the quota itself into every P99)
PERIOD_US = 10_000
TOP = "inferops-fleets"


def _unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def _base() -> Path:
    return CGROUP_ROOT / TOP if _unified() else CGROUP_ROOT / "cpu" / TOP


def path(slot: int, host: str) -> Path:
    return _base() / f"slot{slot}" / host


def available() -> str | None:
    """Why quotas cannot be set here (None when they can)."""
    if _unified():
        if "cpu" not in (CGROUP_ROOT / "cgroup.controllers").read_text().split():
            return "cgroup v2 without the cpu controller"
        return None
    if not (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        return "no cgroup cpu controller (cgroup v1 cpu.cfs_quota_us missing)"
    return None


def _enable_cpu(directory: Path) -> None:
    # v2: a child gets cpu.max only if its parent delegates the cpu controller
    control = directory / "cgroup.subtree_control"
    if "cpu" not in control.read_text().split():
        control.write_text("+cpu")


def create(slot: int, host: str) -> Path:
    """The host's cgroup (created empty, no quota yet)."""
    target = path(slot, host)
    target.mkdir(parents=True, exist_ok=True)
    if _unified():
        for directory in (CGROUP_ROOT, _base(), _base() / f"slot{slot}"):
            _enable_cpu(directory)
    return target


def join_self(slot: int, host: str) -> None:
    """Move the calling process into the host's cgroup (``preexec_fn`` of nspawn's Popen)."""
    (path(slot, host) / "cgroup.procs").write_text(str(os.getpid()))


def set_quota(slot: int, host: str, percent: float | None) -> None:
    """Cap the host at ``percent`` of one core (None: no cap)."""
    target = path(slot, host)
    if _unified():
        value = "max" if percent is None else str(max(1000, int(PERIOD_US * percent / 100)))
        (target / "cpu.max").write_text(f"{value} {PERIOD_US}")
        return
    (target / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    quota = -1 if percent is None else max(1000, int(PERIOD_US * percent / 100))
    (target / "cpu.cfs_quota_us").write_text(str(quota))


def quota(slot: int, host: str) -> float | None:
    """The host's current cap in percent of one core (None: none)."""
    target = path(slot, host)
    if _unified():
        value, period = (target / "cpu.max").read_text().split()
        return None if value == "max" else 100.0 * int(value) / int(period)
    value = int((target / "cpu.cfs_quota_us").read_text())
    period = int((target / "cpu.cfs_period_us").read_text())
    return None if value < 0 else 100.0 * value / period


def throttled_periods(slot: int, host: str) -> int:
    """How many CFS periods the host hit its quota in (``nr_throttled``, v1 and v2)."""
    for line in (path(slot, host) / "cpu.stat").read_text().splitlines():
        if line.startswith("nr_throttled "):
            return int(line.split()[1])
    return 0


def remove_slot(slot: int) -> None:
    """Remove the slot's (empty) cgroups; left in place if a process still holds one."""
    base = _base() / f"slot{slot}"
    if not base.exists():
        return
    for child in sorted(base.iterdir(), reverse=True):
        if child.is_dir():
            _rmdir_tree(child)
    _rmdir_tree(base)


def _rmdir_tree(directory: Path) -> None:
    # nested cgroups (those a booted systemd made) go first; files in a cgroup dir are
    # kernel interfaces that rmdir removes with it
    for child in [c for c in directory.iterdir() if c.is_dir()]:
        _rmdir_tree(child)
    try:
        directory.rmdir()
    except OSError:
        pass
