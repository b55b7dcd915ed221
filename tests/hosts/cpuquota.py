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

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The quota is granted per CFS period: a host that spends it stalls until the period ends.
# So the period is the shortest the kernel allows for the quota (a quota of at least 1 ms,
# MIN_QUOTA_US): 4 ms at 25 %, 5 ms at 20 %, 10 ms at 10 %. Long periods make a capped host
# a fast CPU with long stalls, not a slow one: at 10 % of a 10 ms period, requests that
# find the quota spent wait up to 9 ms, and a balancer's least_conn then steers around the
# stalled host, so a pool of such hosts carried 3x one of them with two (fleet benchmark,
# docs/benchmarks.md). The default 100 ms period would put the quota into every P99.
MIN_QUOTA_US = 1_000
MAX_PERIOD_US = 100_000
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


def period_us(percent: float) -> int:
    """The shortest CFS period whose quota at ``percent`` of a core is still >= 1 ms."""
    return min(MAX_PERIOD_US, max(MIN_QUOTA_US, math.ceil(MIN_QUOTA_US * 100 / percent)))


def set_quota(slot: int, host: str, percent: float | None) -> None:
    """Cap the host at ``percent`` of one core (None: no cap)."""
    target = path(slot, host)
    period = MAX_PERIOD_US if percent is None else period_us(percent)
    quota = None if percent is None else max(MIN_QUOTA_US, round(period * percent / 100))
    if _unified():
        (target / "cpu.max").write_text(f"{'max' if quota is None else quota} {period}")
        return
    # v1 checks each write against the other value: lift the cap, set the period, cap again
    (target / "cpu.cfs_quota_us").write_text("-1")
    (target / "cpu.cfs_period_us").write_text(str(period))
    if quota is not None:
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
