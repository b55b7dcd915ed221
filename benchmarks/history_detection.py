"""How well the nightly detector separates regressions from noise, next to a naive rule.

On SYNTHETIC histories (``inferops.history.synthetic``: log-normal latencies
in the recorder's HDR format, a per-run and a per-second noise factor), for
each per-run noise level, side by side in one run:

* false-positive rate on noise-only nights (20 nights at 1.0, tonight and its
  rerun at 1.0), and
* power on a planted regression (tonight and its rerun 10 % slower),

for the detector's stages (flagged vs baseline; suspected = also outside the
history's spread; confirmed = rerun and change point agree) and for the naive
single-run rules "P99 more than 10 % (5 %) above the baseline".

    .venv/bin/python benchmarks/history_detection.py --seeds 200 --noise 0.01 0.03
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inferops.history.synthetic import judge_night

STAGES = ("flagged", "suspected", "confirmed", "naive_p99_10pct", "naive_p99_5pct")


def rates(seeds: int, scale: float, noise: float, offset: int) -> dict[str, float]:
    counts = dict.fromkeys(STAGES, 0)
    for seed in range(seeds):
        verdict = judge_night(offset + seed, scale, run_noise=noise)
        for stage in STAGES:
            counts[stage] += verdict[stage]
    return {stage: counts[stage] / seeds for stage in STAGES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="noise-only histories per level")
    parser.add_argument("--power-seeds", type=int, default=50, help="planted histories per level")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.03])
    args = parser.parse_args()
    print(f"{'run noise':<10}{'measure':<28}" + "".join(f"{s:>17}" for s in STAGES))
    for noise in args.noise:
        t0 = time.perf_counter()
        fpr = rates(args.seeds, 1.0, noise, 0)
        power = rates(args.power_seeds, 1.10, noise, 1_000_000)
        for label, row in (
            (f"FPR, {args.seeds} noise seeds", fpr),
            (f"power, {args.power_seeds} x +10 %", power),
        ):
            print(f"{noise:<10.0%}{label:<28}" + "".join(f"{row[s]:>17.1%}" for s in STAGES))
        naive = power["naive_p99_10pct"]
        print(
            f"{'':<10}{'power ratio confirmed/naive10':<28}"
            f"{power['confirmed'] / naive if naive else float('inf'):>17.2f}"
            f"   ({time.perf_counter() - t0:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
