"""Sizing checked against reality: one node's max QPS at the SLO, the sizing model's
prediction for 2 and 3 nodes, and 2 and 3 nodes measured through nginx.

Boots four Debian 12 hosts (tests/hosts, a free slot in 10.231.30-35.0/24), deploys
``deploys/cpu_node.py`` (mlp) on three and ``deploys/loadbalancer.py`` on the fourth,
caps each inference host at 25 % of a core and nginx at 50 % (cgroup CPU quota), then:

1. ``inferops bench --sweep`` straight at node 1: its max QPS at the P99 SLO without
   the balancer (what nginx costs is the ratio to step 2);
2. ``inferops bench --sweep --nodes N`` at nginx with N = 1, 2, 3 (the other nodes at
   weight 0, i.e. ``down``);
3. ``inferops report`` on the four runs: its "predicted vs measured" table (N x the
   one-node run behind the same balancer).

Prints the table with the error of each prediction and the N/1 ratios, and writes the
runs and the report under ``--out``. Needs root (nspawn); takes ~15 minutes.

    .venv/bin/python benchmarks/fleet_scaling.py --out fleet-scaling
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hosts.fleet import claim_free_fleet, missing_prerequisites
from tests.realhost.deploying import Deployer
from tests.realhost.lbfleet import (
    LB_QUOTA_PCT,
    NODE_QUOTA_PCT,
    LbFleet,
    SweepSettings,
    measure_scaling,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("fleet-scaling"))
    parser.add_argument("--slo-p99-ms", type=float, default=50.0)
    parser.add_argument("--duration", default="10s", help="each sweep step (default 10s)")
    parser.add_argument("--budget", default="120s", help="each sweep's time budget")
    args = parser.parse_args(argv)
    problems = missing_prerequisites()
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    # SIGTERM (timeout, kill) unwinds through the finally below: the fleet goes down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="inferops-fleet-scaling-"))
    fleet = claim_free_fleet("f", range(30, 36), work / "fleet", size=4)
    fleet.up()
    try:
        lb = LbFleet(fleet, Deployer(fleet, work), nodes=fleet.hosts[:3], lb=fleet.hosts[3])
        lb.deploy()
        lb.apply_quotas()
        settings = SweepSettings(
            slo_p99_ms=args.slo_p99_ms, duration=args.duration, warmup="3s",
            precision=0.03, budget=args.budget,
        )  # fmt: skip
        runs = measure_scaling(lb, args.out.resolve(), settings, direct=True)
    finally:
        fleet.down()
        shutil.rmtree(work, ignore_errors=True)
    return report(runs, args, settings)


def report(runs: list[Path], args, settings: SweepSettings) -> int:
    from inferops.report.analysis import Options, analyse
    from inferops.report.runs import load_run

    loaded = [load_run(r) for r in runs]
    facts = analyse(loaded, Options(target_qps=100.0, slo_p99_ms=settings.slo_p99_ms))
    html = args.out / "report.html"
    from inferops.cli import main as cli

    cli(["report", *map(str, runs), "--out", str(html), "--target-qps", "100"])
    print()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; nodes capped at "
          f"{NODE_QUOTA_PCT:g} % of a core, nginx at {LB_QUOTA_PCT:g} %; P99 SLO "
          f"{settings.slo_p99_ms:g} ms; sweep steps {settings.duration}")  # fmt: skip
    direct, one = (facts.runs[i].sizing.max_qps_at_slo for i in (0, 1))
    print(f"1 node (direct): max QPS at SLO = {direct if direct is None else round(direct, 1)}")
    print(
        f"1 node (nginx):  max QPS at SLO = {one if one is None else round(one, 1)}"
        + (f"  ({one / direct:.2f}x direct)" if one and direct else "")
    )
    print(f"{'nodes':>5} {'predicted':>10} {'measured':>10} {'error':>8} {'ratio N/1':>10}")
    for row in facts.fleet_check:
        measured = row.measured_qps
        ratio = f"{measured / one:.2f}x" if measured and one else "-"
        error = f"{row.error_pct:+.1f} %" if row.error_pct is not None else "-"
        print(f"{row.nodes:>5} {row.predicted_qps:>10.1f} "
              f"{measured if measured is None else round(measured, 1)!s:>10} {error:>8} {ratio:>10}"
              f"   {'within' if row.within else 'OUTSIDE'} +-{facts.fleet_check_tolerance_pct:g} %")  # fmt: skip
    print(f"wrote {args.out}/ (runs n1-direct, n1-nginx, n2-nginx, n3-nginx and report.html)")
    return 0 if facts.fleet_check and all(r.within for r in facts.fleet_check) else 1


if __name__ == "__main__":
    sys.exit(main())
