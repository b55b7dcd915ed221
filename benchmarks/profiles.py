"""Optimisation profiles side by side: FP32 vs INT8 dynamic vs INT8 static vs OpenVINO (vs OpenVINO INT8).

    .venv/bin/python benchmarks/profiles.py [--models mlp,cnn,dense] [--core 1] [--rounds 5]

For each embedded model, each profile is built once with ``inferops model
optimize`` (into ``--workdir``; reused while the source and recipe match) and
measured in this one process, pinned to one core, one engine thread:

* size on disk (an IR counts ``.xml`` + ``.bin``);
* per-sample latency at batch 1 and batch 8 (median call time / batch);
* raw throughput: samples/s at batch 32, closed loop, no server;
* accuracy against FP32 on held-out generated samples (``inferops model compare``).

``--formats`` adds two int8-static variants that the CPU-flag plan decides
between: ``static-s8s8`` (signed activations, ORT's documented QDQ default) and
``static-perch`` (per-channel weights).

Timing is interleaved: every round measures every profile at every batch size
for ``--seconds`` (the median call of that window), rotating which profile goes
first. Absolute figures are the best window over rounds; speed ratios are the
median over rounds of FP32's window over the profile's window from the same
round, which cancels load that drifts during the run. ``noise`` is the max/min
of the batch-8 windows over rounds (1.00 = quiet). Ratios are against FP32 (>1 is
better for speed-ups, <1 smaller for size). The CPU's flags are printed first:
INT8 speed depends on them (VNNI/AMX or not).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inferops.models import cpuflags, resolve, samples  # noqa: E402
from inferops.models.compare import Runner, compare  # noqa: E402
from inferops.models.optimize import optimize, sha256_file, sidecar_path, suffix_for  # noqa: E402

PROFILES = ("fp32", "int8-dynamic", "int8-static", "openvino", "openvino-int8")
#: Held-out comparison samples per model (top-1 on mlp needs many; cnn's ConvInteger is slow).
ACCURACY_SAMPLES = {"mlp": "1000", "cnn": "128", "dense": "256"}
BATCHES = (1, 8, 32)


#: ``--formats``: int8-static variants that show why the CPU-flag plan picks what it picks.
FORMAT_VARIANTS = {
    "static-s8s8": {"activation_type": "int8"},
    "static-perch": {"per_channel": "on"},
}


def build_profiles(model: str, workdir: Path, formats: bool, rebuild: bool) -> dict[str, dict]:
    source = resolve(model)
    digest = sha256_file(source)
    built = {"fp32": {"output": {"path": str(source), "bytes": source.stat().st_size}}}
    wanted = [(p, p, {}) for p in PROFILES[1:]]
    if formats:
        wanted += [(name, "int8-static", opts) for name, opts in FORMAT_VARIANTS.items()]
    for name, profile, options in wanted:
        out = workdir / f"{model}-{name}{suffix_for(profile)}"
        sidecar = sidecar_path(out)
        if sidecar.is_file() and not rebuild:
            record = json.loads(sidecar.read_text())
            if record["source"]["sha256"] == digest and Path(record["output"]["path"]).is_file():
                built[name] = record
                continue
        t0 = time.perf_counter()
        built[name] = optimize(model, profile, out, **options)
        print(f"  built {out.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return built


def time_calls(runner: Runner, feeds: dict, seconds: float) -> list[float]:
    runner.infer(feeds)  # warm-up
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        runner.infer(feeds)
        times.append(time.perf_counter() - t)
    return times


def measure(model: str, built: dict, rounds: int, seconds: float) -> dict[str, dict]:
    runners = {p: Runner(Path(r["output"]["path"]), threads=1) for p, r in built.items()}
    specs = runners["fp32"].specs
    data = samples.generate(specs, max(BATCHES), seed=11)
    feeds = {b: {k: v[:b] for k, v in data.items()} for b in BATCHES}
    windows: dict[str, dict[int, list[float]]] = {p: {b: [] for b in BATCHES} for p in runners}
    order = list(runners)
    for r in range(rounds):
        for batch in BATCHES:
            # Rotate who goes first, so no profile always follows the same neighbour.
            for profile in order[r % len(order) :] + order[: r % len(order)]:
                times = time_calls(runners[profile], feeds[batch], seconds)
                windows[profile][batch].append(float(np.median(times)))
    base = windows["fp32"]
    results = {}
    for profile, by_batch in windows.items():
        # The least-disturbed window: on a shared machine slower windows are other
        # processes' interference, not the engine (the reasoning of timeit's min).
        call = {b: min(v) for b, v in by_batch.items()}
        results[profile] = {
            "bytes": built[profile]["output"]["bytes"],
            "ms_per_sample_b1": call[1] * 1000,
            "ms_per_sample_b8": call[8] * 1000 / 8,
            "samples_per_s_b32": 32 / call[32],
            "round_spread_b8": _spread(by_batch[8]),
            # Ratios per round (FP32 and the profile measured moments apart), then the
            # median: robust to load that drifts over the run.
            "speedup": {
                b: float(np.median(np.array(base[b]) / np.array(by_batch[b]))) for b in BATCHES
            },
        }
    return results


def _spread(values: list[float]) -> float:
    """max/min over rounds: how noisy the machine was for this figure."""
    return float(max(values) / min(values)) if values and min(values) > 0 else float("nan")


def accuracy_of(model: str, built: dict) -> dict[str, dict]:
    ref = resolve(model)
    out = {}
    for profile, record in built.items():
        if profile == "fp32":
            continue
        result = compare(ref, Path(record["output"]["path"]), ACCURACY_SAMPLES[model], layers=False)
        (metrics,) = result["outputs"].values()
        out[profile] = {
            "agreement": result["agreement"]["value"],
            "agreement_metric": result["agreement"]["metric"],
            "max_abs_error": metrics["max_abs_error"],
            "mean_abs_error": metrics["mean_abs_error"],
            "samples": result["samples"]["count"],
        }
    return out


def render(model: str, perf: dict, acc: dict) -> str:
    base = perf["fp32"]
    head = (
        f"{'profile':<15}{'size MB':>9}{'x':>6}{'b1 ms':>9}{'x':>6}{'b8 ms':>9}{'x':>6}"
        f"{'b32 /s':>9}{'x':>6}{'agreement':>15}{'max|err|':>10}{'noise':>7}"
    )
    lines = [f"{model}:", head]
    for profile, p in perf.items():
        a = acc.get(profile)
        agreement = f"{a['agreement']:.2%} {a['agreement_metric']}" if a else "reference"
        err = f"{a['max_abs_error']:.3g}" if a else "-"
        x = p["speedup"]
        lines.append(
            f"{profile:<15}{p['bytes'] / 1e6:>9.2f}{p['bytes'] / base['bytes']:>6.2f}"
            f"{p['ms_per_sample_b1']:>9.4g}{x[1]:>6.2f}"
            f"{p['ms_per_sample_b8']:>9.4g}{x[8]:>6.2f}"
            f"{p['samples_per_s_b32']:>9.0f}{x[32]:>6.2f}"
            f"{agreement:>15}{err:>10}{p['round_spread_b8']:>7.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn,dense")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="per profile, batch and round")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/inferops-bench-profiles"))
    parser.add_argument("--json", type=Path, default=None, help="also write all figures here")
    parser.add_argument(
        "--formats",
        action="store_true",
        help="also int8-static with S8S8 activations and with per-channel weights",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild profiles in --workdir")
    args = parser.parse_args()

    os.sched_setaffinity(0, {args.core})
    cpu = cpuflags.read_cpu()
    plan = cpuflags.int8_plan(cpu)
    print(f"cpu: {cpu.describe()}")
    print(f"int8 plan: {plan.reason}")
    print(f"pinned to core {args.core}, one engine thread; {args.rounds} interleaved rounds")
    print("x = ratio to fp32: size (<1 smaller); speed (>1 faster), the median of per-round ratios")
    print(
        "figures: best of the rounds' median calls; noise = max/min of the b8 windows\n", flush=True
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    everything = {"cpu": cpu.as_record(), "int8_plan": plan.as_record(), "models": {}}
    for model in args.models.split(","):
        built = build_profiles(model, args.workdir, args.formats, args.rebuild)
        perf = measure(model, built, args.rounds, args.seconds)
        acc = accuracy_of(model, built)
        print(render(model, perf, acc) + "\n", flush=True)
        everything["models"][model] = {"performance": perf, "accuracy": acc}
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2) + "\n")
        print(f"figures written to {args.json}")
    else:
        print(f"profiles written to {args.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
