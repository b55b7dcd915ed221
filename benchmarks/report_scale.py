"""How the report scales: a synthetic 10M-request, 24 h (86,400 rows at 1 Hz) run.

Measures, side by side in one run:

* the real CLI end to end (``python -m inferops report``) in a subprocess:
  wall time and peak RSS (``getrusage(RUSAGE_CHILDREN)``), against the goals
  of 10 s and 1 GiB;
* the phases inside one process: read + validate the folder, analyse
  (percentiles, sizing, Erlang C), charts, template, write;
* the alternative the report avoids: plotting all 86,400 points into the SVG
  instead of bucketing to ``charts.MAX_POINTS`` (time and file size ratios).

The run folder is SYNTHETIC (``inferops.report.synthetic``), generated once
into a temporary folder (or ``--keep DIR``).

    .venv/bin/python benchmarks/report_scale.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 10.0
GOAL_RSS = 1 << 30
REQUESTS = 10_000_000
ROWS = 86_400

PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
import inferops.report.charts as charts
if sys.argv[3] == "naive":
    charts.MAX_POINTS = 10**9  # the alternative: every row becomes an SVG vertex
from inferops.atomicfile import atomic_write_text
from inferops.report.analysis import Options, analyse
from inferops.report.render import add_charts, render_html
from inferops.report.runs import load_runs
t1 = time.perf_counter()
runs = load_runs([sys.argv[1]])
t2 = time.perf_counter()
facts = analyse(runs, Options(target_qps=1000))
t3 = time.perf_counter()
ctx = add_charts(facts, runs)
t4 = time.perf_counter()
html = render_html(ctx)
t5 = time.perf_counter()
atomic_write_text(sys.argv[2], html)
t6 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "read": t2 - t1, "analyse": t3 - t2,
                  "charts": t4 - t3, "template": t5 - t4, "write": t6 - t5,
                  "bytes": len(html.encode())}))
"""


def child(cmd: list[str]) -> tuple[float, int, str]:
    """Run one child; return wall seconds, its peak RSS in bytes, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"child failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr}")
    # ru_maxrss (KiB on Linux) is the max over every child waited for so far, so
    # the CLI runs go first: nothing bigger has run before them
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) * 1024, res.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the synthetic run here and keep it")
    parser.add_argument("--repeat", type=int, default=3, help="timed CLI runs (median)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="report-scale-"))
    run = root / "run-24h"

    from inferops.report import synthetic

    if not (run / "summary.json").exists():
        t = time.perf_counter()
        synthetic.write_run(
            run,
            profile="cpu-24h",
            offered_qps=REQUESTS / ROWS,
            capacity_qps=200.0,
            duration_s=float(ROWS),
            requests=REQUESTS,
            rows=ROWS,
        )
        print(
            f"generated synthetic run ({REQUESTS:,} requests, {ROWS:,} rows) "
            f"in {time.perf_counter() - t:.1f} s: {run}"
        )
    sizes = {p.name: p.stat().st_size for p in run.iterdir()}
    print("input files:", ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(sizes.items())))

    # 1. the real CLI, end to end (interpreter start and imports included)
    out = root / "report.html"
    walls = []
    for _ in range(args.repeat):
        wall, rss, _ = child(
            [
                sys.executable,
                "-m",
                "inferops",
                "report",
                str(run),
                "--out",
                str(out),
                "--target-qps",
                "1000",
            ]
        )
        walls.append(wall)
    walls.sort()
    cli_wall = walls[len(walls) // 2]
    cli_rss = rss
    print(
        f"\nCLI end to end: median {cli_wall:.2f} s of {args.repeat} "
        f"(min {walls[0]:.2f}, max {walls[-1]:.2f}); peak RSS {cli_rss / 2**20:.0f} MiB; "
        f"report {out.stat().st_size / 1e6:.2f} MB"
    )
    print(
        f"  vs goal: time {cli_wall / GOAL_S:.2f} x of {GOAL_S:g} s, "
        f"memory {cli_rss / GOAL_RSS:.2f} x of 1 GiB -> "
        f"{'MEETS' if cli_wall <= GOAL_S and cli_rss <= GOAL_RSS else 'MISSES'} the goals"
    )

    # 2. phases, bucketed (what ships) vs naive (every row plotted)
    results = {}
    for mode in ("bucketed", "naive"):
        target = root / f"phases-{mode}.html"
        wall, _, stdout = child([sys.executable, "-c", PHASES, str(run), str(target), mode])
        results[mode] = json.loads(stdout) | {"wall": wall}
    print("\nphases (s)          bucketed    naive   naive/bucketed")
    for key in ("import", "read", "analyse", "charts", "template", "write", "wall"):
        b, n = results["bucketed"][key], results["naive"][key]
        print(f"  {key:<16} {b:9.2f} {n:9.2f} {n / b if b else float('nan'):9.1f}x")
    b, n = results["bucketed"]["bytes"], results["naive"]["bytes"]
    print(f"  {'html MB':<16} {b / 1e6:9.2f} {n / 1e6:9.2f} {n / b:9.1f}x")
    print(f"\nmachine: {os.cpu_count()} cores, python {sys.version.split()[0]}; folder {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
