"""Provisioning speed on real nspawn hosts: fresh deploy, no-op re-run, 1 vs 4 hosts.

Boots five Debian 12 hosts (tests/hosts, a free slot in 10.231.20-25.0/24) and
runs the real ``pyinfra`` CLI with ``deploys/cpu_node.py``:

- fresh deploy on 1 host, then on 4 other hosts at once (pyinfra's parallel run);
- no-op re-runs on the same 1 and 4 hosts (median of ``--repeats``).

Goals: a no-op re-run <= 5 s per host; 4 hosts <= 1.5x the time of 1.
Needs root (like the real-host tests). Usage::

    .venv/bin/python benchmarks/provision.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hosts.fleet import claim_free_fleet, missing_prerequisites
from tests.realhost.deploying import CPU_NODE, Deployer

NOOP_GOAL_S = 5.0
PARALLEL_GOAL = 1.5


def timed_run(deployer: Deployer, fleet_file: Path, label: str, expect_changes: bool) -> float:
    result = deployer.run(CPU_NODE, fleet_file=fleet_file)
    if result.returncode != 0 or result.total is None or result.total.errors:
        raise SystemExit(f"{label}: deploy failed (rc={result.returncode})\n{result.tail()}")
    changed = bool(result.changed_ops)
    if changed != expect_changes:
        raise SystemExit(f"{label}: expected {'changes' if expect_changes else 'a no-op'}, "
                         f"changed: {result.changed_ops}")  # fmt: skip
    print(f"  {label:<28} {result.seconds:7.1f} s  ({result.total.changed} ops changed)")
    return result.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="no-op re-runs per size")
    args = parser.parse_args()
    if args.repeats < 1:
        print("error: --repeats must be >= 1", file=sys.stderr)
        return 2
    problems = missing_prerequisites()
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="inferops-provision-"))
    fleet = claim_free_fleet("b", range(20, 26), work / "fleet", size=5)
    start = time.monotonic()
    fleet.up()
    boot_s = time.monotonic() - start
    try:
        deployer = Deployer(fleet, work)
        one = deployer.fleet.write_fleet_toml(work / "one.toml", data=deployer.data,
                                              hosts=fleet.hosts[:1])  # fmt: skip
        four = deployer.fleet.write_fleet_toml(work / "four.toml", data=deployer.data,
                                               hosts=fleet.hosts[1:])  # fmt: skip
        print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.release()}")
        print(f"  boot 5 hosts until SSH     {boot_s:7.1f} s")
        fresh1 = timed_run(deployer, one, "fresh deploy, 1 host", True)
        fresh4 = timed_run(deployer, four, "fresh deploy, 4 hosts", True)
        noop1 = [timed_run(deployer, one, f"no-op re-run, 1 host #{i + 1}", False)
                 for i in range(args.repeats)]  # fmt: skip
        noop4 = [timed_run(deployer, four, f"no-op re-run, 4 hosts #{i + 1}", False)
                 for i in range(args.repeats)]  # fmt: skip
    finally:
        fleet.down()
        shutil.rmtree(work, ignore_errors=True)  # keys and fleet files of hosts now gone

    n1, n4 = statistics.median(noop1), statistics.median(noop4)
    print()
    print(f"fresh deploy:  1 host {fresh1:6.1f} s   4 hosts {fresh4:6.1f} s   "
          f"ratio 4/1 = {fresh4 / fresh1:.2f}x (goal <= {PARALLEL_GOAL}x)")  # fmt: skip
    print(f"no-op re-run:  1 host {n1:6.1f} s   4 hosts {n4:6.1f} s   "
          f"ratio 4/1 = {n4 / n1:.2f}x (goal <= {PARALLEL_GOAL}x)")  # fmt: skip
    print(f"no-op per host: {n1:.1f} s alone, {n4 / 4:.1f} s amortised over 4 "
          f"(goal <= {NOOP_GOAL_S:.0f} s)")  # fmt: skip
    print("wrote no files: the fleet, its overlays and scratch dir are removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
