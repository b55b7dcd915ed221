"""How the nightly history scales: a year of nights, and two 10M-request runs.

Measures, side by side in one run:

* ``inferops history report`` (the trend report) over 365 nightly runs of 10
  scenarios (3,650 runs in a SQLite store): wall time and peak RSS of the real
  CLI in a subprocess, against the goals of 5 s and 512 MiB;
* ``inferops compare`` on two 10M-request run folders: wall time of the real
  CLI (interpreter start-up and imports included) against the goal of 2 s,
  and, in-process, the comparison alone;
* the ratio of each figure to its goal.

Runs and store are SYNTHETIC (``inferops.history.synthetic``: log-normal
latencies in the recorder's own HDR format), generated once into a temporary
folder (or ``--keep DIR``; generation is not timed).

    .venv/bin/python benchmarks/history_scale.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT_GOAL_S, REPORT_GOAL_RSS = 5.0, 512 << 20
COMPARE_GOAL_S = 2.0
NIGHTS, SCENARIOS = 365, 10
REQUESTS = 10_000_000

IN_PROCESS = r"""
import json, sys, time
from inferops.history.compare import compare
from inferops.history.runsource import load_run
t0 = time.perf_counter()
a, b = load_run(sys.argv[1]), load_run(sys.argv[2])
t1 = time.perf_counter()
result = compare(a, b)
t2 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "compare": t2 - t1, "exit": result.exit_code}))
"""


def build_store(path: Path) -> None:
    from inferops.history import synthetic
    from inferops.history.store import open_store

    with open_store(str(path), write=True) as store:
        for s in range(SCENARIOS):
            for night in range(NIGHTS):
                # a 10 % step at night 200 in every other scenario: change points to draw
                scale = 1.10 if (s % 2 and night >= 200) else 1.0
                run = synthetic.synthetic_run(
                    seed=s * 1000 + night, night=night, scale=scale, base_ms=2.0 + s
                )
                store.add_run(run, scenario=f"scenario-{s:02d}", profile="bench")
            store.set_baseline(store.runs(f"scenario-{s:02d}", "bench")[0].id)


def build_big_run(path: Path, seed: int, scale: float) -> None:
    from inferops.history.synthetic import write_synthetic_run

    # 100 one-second windows of 100,000 requests
    write_synthetic_run(path, seed=seed, scale=scale, windows=100, rate=REQUESTS // 100)


# the real CLI entry point, reporting its own peak RSS on the way out
CLI = (
    "import resource, sys\n"
    "from inferops.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def timed(args: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (bytes) of ``inferops ARGS`` in a fresh interpreter."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - t0
    rss = [line for line in done.stderr.splitlines() if line.startswith("MAXRSS_KB ")]
    peak = int(rss[-1].split()[1]) * 1024 if rss else -1
    return wall, peak, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this folder")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is kept)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="inferops-history-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    store, run_a, run_b = work / "history.sqlite", work / "big-a", work / "big-b"
    t0 = time.perf_counter()
    if not store.exists():
        build_store(store)
    if not (run_a / "summary.json").exists():
        build_big_run(run_a, seed=1, scale=1.0)
        build_big_run(run_b, seed=2, scale=1.03)
    print(f"generated in {time.perf_counter() - t0:.1f} s under {work}")
    print(f"store: {store.stat().st_size / 2**20:.1f} MiB, {NIGHTS * SCENARIOS} runs")

    py = sys.executable
    compare_walls, compare_peak = [], 0
    for _ in range(args.repeat):
        wall, peak, done = timed(["compare", str(run_a), str(run_b)])
        assert done.returncode in (0, 1), done.stderr
        compare_walls.append(wall)
        compare_peak = max(compare_peak, peak)
    inside = json.loads(
        subprocess.run(
            [py, "-c", IN_PROCESS, str(run_a), str(run_b)],
            capture_output=True, text=True, cwd=ROOT, check=True,
        ).stdout
    )  # fmt: skip
    report_walls, report_peak = [], 0
    for i in range(args.repeat):
        out = work / f"trend-{i}.html"
        wall, peak, done = timed(["history", "report", "--out", str(out), "--store", str(store)])
        assert done.returncode == 0, done.stderr
        report_walls.append(wall)
        report_peak = max(report_peak, peak)
    size = (work / "trend-0.html").stat().st_size

    def line(name, value, goal, unit):
        print(
            f"{name:<44}{value:>9.2f} {unit:<4} goal {goal:>6.1f} {unit:<4} ratio {value / goal:.2f}"
        )

    print()
    line("trend report, 3,650 runs: wall (best)", min(report_walls), REPORT_GOAL_S, "s")
    line("trend report: peak RSS", report_peak / 2**20, REPORT_GOAL_RSS / 2**20, "MiB")
    print(f"{'trend report: HTML size':<44}{size / 2**20:>9.2f} MiB")
    line("compare, 2 x 10M requests: CLI wall (best)", min(compare_walls), COMPARE_GOAL_S, "s")
    print(f"{'compare: peak RSS':<44}{compare_peak / 2**20:>9.2f} MiB")
    print(f"{'  of which: read both folders':<44}{inside['read']:>9.2f} s")
    print(f"{'  of which: compare (bootstrap, MWU)':<44}{inside['compare']:>9.2f} s")
    print(f"\nall walls: report {[round(w, 2) for w in report_walls]}, "
          f"compare {[round(w, 2) for w in compare_walls]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
