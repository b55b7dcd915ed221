"""Provisioning speed on real nspawn hosts: fresh deploy 1 vs 4 hosts, no-op re-run, before/after.

Runs the real ``pyinfra`` CLI with ``deploys/cpu_node.py`` against freshly booted
Debian 12 hosts (tests/hosts), for two variants side by side in one run:

- ``stock``: ``--data fact_batching=false --data pip_wheelhouse=false`` - one SSH
  round trip per fact read, every host downloading its wheels from the index
  (the deploy as it was before both existed);
- ``batched``: the defaults - a host's fact reads in one command per stage
  (``inferops.deploy.factbatch``), the lock's wheels downloaded once on the control
  machine and shipped (``pip_wheelhouse``).

For each variant: a 1-host fleet (fresh deploy, then ``--repeats`` no-op re-runs), then
a 4-host fleet (the same); never more than 4 hosts up at once. Each fleet starts with
an empty control-side state (no wheelhouse, no remembered facts); the wheel and the
model are built once beforehand, so neither is in any figure. One extra ``--debug``
no-op run per fleet counts SSH commands (``Running command on``) per host.

Goals: no-op re-run <= 3 s per host; fresh deploy of 4 hosts <= 1.5x one host.
Needs root (like the real-host tests). Usage::

    .venv/bin/python benchmarks/provision.py [--repeats 3] [--slots 20-25]
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

NOOP_GOAL_S = 3.0
PARALLEL_GOAL = 1.5
VARIANTS = {
    "stock": ("--data", "fact_batching=false", "--data", "pip_wheelhouse=false"),
    "batched": (),
}


def timed_run(deployer: Deployer, options: tuple, label: str, expect_changes: bool) -> float:
    result = deployer.run(CPU_NODE, options=options)
    if result.returncode != 0 or result.total is None or result.total.errors:
        raise SystemExit(f"{label}: deploy failed (rc={result.returncode})\n{result.tail()}")
    changed = bool(result.changed_ops)
    if changed != expect_changes:
        raise SystemExit(f"{label}: expected {'changes' if expect_changes else 'a no-op'}, "
                         f"changed: {result.changed_ops}")  # fmt: skip
    print(
        f"  {label:<34} {result.seconds:7.1f} s  ({result.total.changed} ops changed)", flush=True
    )
    return result.seconds


def ssh_commands_per_host(deployer: Deployer, options: tuple, hosts: int) -> float:
    """SSH commands a no-op re-run sends, per host (pyinfra --debug logs each one)."""
    result = deployer.run(CPU_NODE, options=(*options, "--debug"))
    if result.returncode != 0 or result.changed_ops:
        raise SystemExit(f"counted no-op run failed or changed\n{result.tail()}")
    return result.output.count("Running command on") / hosts


def measure_fleet(variant: str, size: int, slots: range, work: Path, seed: Path, repeats: int):
    """Boot ``size`` fresh hosts, deploy, re-run; returns (fresh s, no-op runs, commands/host)."""
    fleet_dir = work / f"{variant}-{size}"
    shutil.copytree(seed, fleet_dir)  # the prebuilt wheel and model only
    fleet = claim_free_fleet("b", slots, fleet_dir / "fleet", size=size)
    start = time.monotonic()
    fleet.up()
    print(f"{variant}, {size} host(s): booted in {time.monotonic() - start:.1f} s", flush=True)
    try:
        deployer = Deployer(fleet, fleet_dir)
        options = VARIANTS[variant]
        fresh = timed_run(deployer, options, f"fresh deploy, {size} host(s)", True)
        noops = [timed_run(deployer, options, f"no-op re-run, {size} host(s) #{i + 1}", False)
                 for i in range(repeats)]  # fmt: skip
        commands = ssh_commands_per_host(deployer, options, size)
        print(f"  {'SSH commands per host, no-op':<34} {commands:7.0f}", flush=True)
    finally:
        fleet.down()
    return fresh, noops, commands


def prepare_seed(work: Path) -> Path:
    """A state skeleton every fleet copies: the wheel build cache and the built model."""
    from inferops.deploy import artifacts

    seed = work / "seed"
    (seed / "wheel-build").mkdir(parents=True)
    (seed / "control-state" / "models").mkdir(parents=True)
    artifacts.build_wheel(cache=seed / "wheel-build")
    artifacts.build_model("mlp", cache=seed / "control-state" / "models")
    return seed


def parse_slots(text: str) -> range:
    low, _, high = text.partition("-")
    return range(int(low), int(high or low) + 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="no-op re-runs per fleet")
    parser.add_argument("--slots", default="20-25", help="fleet slots to claim from (20-25)")
    parser.add_argument("--variants", default="stock,batched", help="which variants, in order")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if args.repeats < 1 or any(v not in VARIANTS for v in variants):
        print(f"error: --repeats >= 1 and --variants from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    try:
        slots = parse_slots(args.slots)
    except ValueError:
        print(f"error: --slots must look like 20-25, got {args.slots!r}", file=sys.stderr)
        return 2
    problems = missing_prerequisites()
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2

    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.release()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="inferops-provision-"))
    results = {}
    try:
        seed = prepare_seed(work)
        for variant in variants:
            for size in (1, 4):
                results[variant, size] = measure_fleet(
                    variant, size, slots, work, seed, args.repeats
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)  # keys and fleet files of hosts now gone

    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<9} {'fresh 1':>8} {'fresh 4':>8} {'4/1':>6} "
          f"{'no-op 1':>8} {'no-op 4':>8} {'per host':>9} {'ssh/host':>9}")  # fmt: skip
    for variant in variants:
        fresh1, noop1, ssh1 = results[variant, 1]
        fresh4, noop4, _ = results[variant, 4]
        n1, n4 = statistics.median(noop1), statistics.median(noop4)
        print(f"{variant:<9} {fresh1:7.1f}s {fresh4:7.1f}s {fresh4 / fresh1:5.2f}x "
              f"{n1:7.1f}s {n4:7.1f}s {n4 / 4:8.1f}s {ssh1:9.0f}")  # fmt: skip
    if len(variants) == 2:
        old, new = variants
        print(f"\n{new} vs {old}: no-op re-run 1 host "
              f"{statistics.median(results[old, 1][1]) / statistics.median(results[new, 1][1]):.2f}x "
              f"faster; fresh 4 hosts {results[old, 4][0] / results[new, 4][0]:.2f}x faster")  # fmt: skip
    print(
        f"goals: no-op re-run <= {NOOP_GOAL_S:.0f} s per host (1 host alone); "
        f"fresh 4 hosts <= {PARALLEL_GOAL}x one host"
    )
    print("wrote no files: the fleets, their overlays and the scratch dir are removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
