"""What ONNX Runtime's thread spinning costs a server: ``inferops serve`` with its default
(idle intra-op threads block) against ``--allow-spinning`` (ORT's own default: they spin-wait
for the next run), side by side at the same fixed open-loop rates.

    .venv/bin/python benchmarks/ort_spinning.py [--model mlp] [--rates 40,200] [--seconds 10]

The server may use both cores (``taskset -c 0,1``: two engine threads, what a 2-CPU host
gives it); ``inferops bench`` is pinned to core 1. For each variant and rate it prints the
server's CPU seconds over the measured window (``psutil``, user + system) and the P99 bench
measured, then the CPU ratio spinning / default. Under a CPU quota (a container limit,
systemd's ``CPUQuota=``) the spinning CPU comes out of the quota: that is what
``benchmarks/fleet_scaling.py``'s 25 %-capped nodes ran into.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inferops.models import resolve  # noqa: E402
from inferops.server.process import ServerProcess  # noqa: E402

VARIANTS = {"default (no spinning)": [], "--allow-spinning": ["--allow-spinning"]}


def measure(model: str, extra: list[str], rate: float, seconds: float, out: Path) -> dict:
    with ServerProcess(resolve(model), extra_args=extra, cpus="0,1") as server:
        proc = psutil.Process(server.pid)
        before = proc.cpu_times()
        cmd = [
            "taskset", "-c", "1", sys.executable, "-m", "inferops", "bench",
            "--target", server.url, "--model", model, "--rate", f"{rate:g}",
            "--duration", f"{seconds:g}s", "--warmup", "0s", "--out", str(out),
            "--overwrite", "--quiet",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        after = proc.cpu_times()
        threads = proc.num_threads()
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"bench failed: {done.stderr.strip()[-500:]}")
    summary = json.loads((out / "summary.json").read_text())
    cpu = (after.user - before.user) + (after.system - before.system)
    return {
        "cpu_s": cpu,
        "p99_ms": summary["latency_ms"]["p99"],
        "achieved": summary["achieved_qps"],
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--rates", default="40,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="inferops-spinning-"))
    results: dict[tuple[str, float], dict] = {}
    for rate in rates:  # variants interleaved per rate: a drift of the machine hits both
        for name, extra in VARIANTS.items():
            out = work / f"{len(results):02d}"
            results[name, rate] = measure(args.model, extra, rate, args.seconds, out)
    print(f"model {args.model}, server on cores 0-1, bench on core 1, {args.seconds:g} s a run")
    print(f"{'variant':<24} {'rate':>6} {'achieved':>9} {'server CPU':>11} {'P99':>9}")
    for rate in rates:
        for name in VARIANTS:
            r = results[name, rate]
            print(f"{name:<24} {rate:>6g} {r['achieved']:>8.1f}/s {r['cpu_s']:>9.2f} s "
                  f"{r['p99_ms']:>7.2f} ms")  # fmt: skip
        spin, default = results["--allow-spinning", rate], results["default (no spinning)", rate]
        print(f"{'':<24} {rate:>6g} server CPU spinning / default: "
              f"{spin['cpu_s'] / default['cpu_s']:.2f}x, P99 {spin['p99_ms'] / default['p99_ms']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
