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

``--repeats R`` sweeps 1, 2, 3 nodes R times, interleaved (1, 2, 3, 1, 2, 3, ...) so a
drift of the machine touches every N alike, into ``--out/repeat-K/``; it prints every
repeat's table and then the medians, and the exit code judges the medians: near the knee
one sweep of a CPU-capped Python server varies more than the tolerance being checked.
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
    parser.add_argument("--repeats", type=int, default=1, help="sweeps per N, interleaved")
    parser.add_argument(
        "--no-direct", action="store_true", help="skip the sweep straight at node 1"
    )
    parser.add_argument(
        "--node-quota-pct",
        type=float,
        default=NODE_QUOTA_PCT,
        help=f"each inference host's CPU quota, %% of a core (default {NODE_QUOTA_PCT:g}); "
        "lower it when N nodes outrun the load generator on this machine",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats: at least 1")
    if not 0 < args.node_quota_pct <= 100:
        parser.error("--node-quota-pct: a share of one core, in (0, 100]")
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
        lb.apply_quotas(node_pct=args.node_quota_pct)
        settings = SweepSettings(
            slo_p99_ms=args.slo_p99_ms, duration=args.duration, warmup="3s",
            precision=0.03, budget=args.budget,
        )  # fmt: skip
        repeats = []
        for index in range(args.repeats):
            out = args.out.resolve()
            out = out / f"repeat-{index + 1}" if args.repeats > 1 else out
            direct = not args.no_direct and index == 0
            repeats.append(measure_scaling(lb, out, settings, direct=direct))
    finally:
        fleet.down()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; nodes capped at "
          f"{args.node_quota_pct:g} % of a core, nginx at {LB_QUOTA_PCT:g} %; P99 SLO "
          f"{settings.slo_p99_ms:g} ms; sweep steps {settings.duration}")  # fmt: skip
    for runs in repeats:
        for run in runs:
            describe(run)
    tables = [report(runs, settings) for runs in repeats]
    if len(tables) == 1:
        return 0 if tables[0]["within"] and all(tables[0]["within"]) else 1
    return print_medians(tables)


def report(runs: list[Path], settings: SweepSettings) -> dict:
    """``inferops report`` on one repeat's runs, its fleet check printed; the figures."""
    from inferops.cli import main as cli
    from inferops.report.analysis import Options, analyse
    from inferops.report.runs import load_run

    facts = analyse([load_run(r) for r in runs],
                    Options(target_qps=100.0, slo_p99_ms=settings.slo_p99_ms))  # fmt: skip
    out = runs[-1].parent
    cli(["report", *map(str, runs), "--out", str(out / "report.html"), "--target-qps", "100"])
    by_name = {r.name: f.sizing.max_qps_at_slo for r, f in zip(runs, facts.runs, strict=True)}
    direct, one = by_name.get("n1-direct"), by_name.get("n1-nginx")
    print(f"\n{out.name}:")
    if "n1-direct" in by_name:
        print(f"1 node (direct): max QPS at SLO = {_qps(direct)}")
    print(f"1 node (nginx):  max QPS at SLO = {_qps(one)}"
          + (f"  ({one / direct:.2f}x direct)" if one and direct else ""))  # fmt: skip
    print(f"{'nodes':>5} {'predicted':>10} {'measured':>10} {'error':>8} {'ratio N/1':>10}")
    table = {"one": one, "measured": {}, "within": []}
    for row in facts.fleet_check:
        measured = row.measured_qps
        ratio = f"{measured / one:.2f}x" if measured and one else "-"
        error = f"{row.error_pct:+.1f} %" if row.error_pct is not None else "-"
        print(f"{row.nodes:>5} {row.predicted_qps:>10.1f} {_qps(measured):>10} {error:>8} "
              f"{ratio:>10}   {'within' if row.within else 'OUTSIDE'} "
              f"+-{facts.fleet_check_tolerance_pct:g} %")  # fmt: skip
        table["within"].append(row.within)
    # every N-node run's capacity, judged or not (a repeat whose one-node sweep failed has
    # no fleet check, but its N-node figures still count towards the medians)
    for name, qps in by_name.items():
        if name.endswith("-nginx") and name != "n1-nginx":
            table["measured"][int(name[1:].split("-")[0])] = qps
    print(f"wrote {out}/ (the runs and report.html)")
    return table


def print_medians(tables: list[dict]) -> int:
    """The median of each N over the repeats, the prediction N x the median one node."""
    from statistics import median

    from inferops.report import sizing

    tolerance = sizing.FLEET_CHECK_TOLERANCE * 100
    ones = [t["one"] for t in tables if t["one"]]
    if not ones:
        print("no repeat sized one node: nothing to judge")
        return 1
    one = median(ones)
    print(f"\nmedians over {len(tables)} repeats: 1 node {one:.1f}/s "
          f"(range {min(ones):.1f}-{max(ones):.1f})")  # fmt: skip
    print(f"{'nodes':>5} {'predicted':>10} {'measured':>10} {'range':>17} {'error':>8}")
    verdicts = []
    for nodes in sorted({n for t in tables for n in t["measured"]}):
        values = [t["measured"][nodes] for t in tables if t["measured"].get(nodes)]
        if not values:
            verdicts.append(False)
            continue
        measured, predicted = median(values), sizing.fleet_capacity(nodes, one)
        error = 100.0 * (measured - predicted) / predicted
        verdicts.append(bool(sizing.within_fleet_tolerance(error)))
        print(f"{nodes:>5} {predicted:>10.1f} {measured:>10.1f} "
              f"{f'{min(values):.0f}-{max(values):.0f}':>17} {error:>+7.1f} %   "
              f"{'within' if verdicts[-1] else 'OUTSIDE'} +-{tolerance:g} %")  # fmt: skip
    return 0 if verdicts and all(verdicts) else 1


def describe(run: Path) -> None:
    """One sweep's steps (offered, achieved, P99, errors and why) and what each node's
    server did over the whole sweep (its /metrics: requests, mean batch, CPU per row)."""
    import csv
    import json

    print(f"\n{run.parent.name}/{run.name}:")
    try:
        steps = json.loads((run / "summary.json").read_text())["slo"]["steps"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"  no sweep summary ({exc})")
        steps = []
    for st in steps:
        why = []
        failures = run / st["dir"] / "locust_failures.csv"
        if st.get("error_rate") and failures.exists():
            with failures.open() as f:
                rows = sorted(csv.DictReader(f), key=lambda r: -int(r["Occurrences"]))
            why = [f"{r['Occurrences']}x {r['Error'][:70]}" for r in rows[:2]]
        p99 = "-" if st["p99_ms"] is None else f"{st['p99_ms']:.0f} ms"
        print(f"  {st['offered_qps']:>8.1f}/s -> {st['achieved_qps'] or 0:>7.1f}/s  P99 {p99:>8}"
              f"  errors {100 * (st.get('error_rate') or 0):5.1f} %  "
              f"{'ok' if st['ok'] else 'miss' if st['valid'] else 'invalid'}"
              + (f"  ({'; '.join(why)})" if why else ""))  # fmt: skip
    nodes = run.with_name(run.name + ".nodes.json")
    if nodes.exists():
        for name, d in json.loads(nodes.read_text()).items():
            if d and d["rows"]:
                print(f"  node {name}: requests {d['requests']}, mean batch {d['mean_batch']}, "
                      f"server CPU {d['cpu_s']} s = {d['cpu_us_per_row']} us/row")  # fmt: skip


def _qps(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
