"""How fast can each load generator send from ONE core? inferops open loop vs stock tools.

Side by side in one run against the same trivial endpoint (tests/load/lawserver.py
with ``fixed:0``: replies at once), server pinned to core 0 and every generator
pinned to core 1 with taskset:

* inferops open loop: the highest Poisson rate (from a ladder) whose run keeps
  late sends < 1 % (the engine's own validity rule), plus its CPU per request;
* stock Locust (FastHttpUser, closed loop, 64 users): req/s it reaches;
* wrk (1 thread, 64 connections) and hey (64 workers): req/s they reach.

The closed-loop tools report throughput, not schedule accuracy: they have no
schedule to be late for. Usage: ``.venv/bin/python benchmarks/loadgen_capacity.py
[--seconds 5] [--rates 1000,2000,...]``. Needs wrk and hey (Debian packages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._stock import (  # noqa: E402
    BODY,
    hey_command,
    stock_locust_aggregate,
    stock_locust_command,
)
from tests.load.procs import LawServer  # noqa: E402

PY = sys.executable
GEN_CORE = "1"


def cpu_run(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, float]:
    """Run a child; also return the CPU seconds it (and its children) used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(cmd, **kw)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return res, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", GEN_CORE, *cmd]


def inferops_rate(url: str, rate: float, seconds: float, work: Path) -> dict:
    out = work / f"inferops-{int(rate)}"
    _, cpu = cpu_run(
        pinned(
            [
                PY,
                "-m",
                "inferops",
                "bench",
                "--target",
                url,
                "--model",
                "law",
                "--rate",
                str(rate),
                "--duration",
                f"{seconds}s",
                "--warmup",
                "1s",
                "--out",
                str(out),
                "--overwrite",
                "--quiet",
                # the strict capacity criterion: late means > 1 ms behind schedule
                # (bench's default would be 5 % of the P99 bound, i.e. 25 ms here)
                "--late-tolerance-ms",
                "1",
            ]
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60,
    )
    s = json.loads((out / "summary.json").read_text())
    sent = s["requests"] / s["duration_s"] * (s["duration_s"] + 1)  # warm-up sends too
    return {
        "rate": rate,
        "achieved": s["achieved_qps"],
        "late_pct": s["late_sends_pct"],
        "gen_cpu_pct": s["generator_cpu_pct_max"],
        "p99_ms": s["latency_ms"]["p99"],
        "cpu_s": cpu,
        "sent": sent,
    }


def stock_locust(url: str, seconds: float, work: Path) -> float:
    argv, prefix = stock_locust_command(url, 64, seconds, work)
    _, cpu = cpu_run(
        pinned(argv), cwd=work, capture_output=True, text=True, timeout=seconds * 4 + 60
    )
    row = stock_locust_aggregate(prefix)
    return float(row["Requests/s"]), int(row["Request Count"]), cpu


def wrk(url: str, seconds: float, work: Path) -> float:
    lua = work / "post.lua"
    lua.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{BODY}'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
    )
    res, cpu = cpu_run(
        pinned(
            [
                "wrk",
                "-t1",
                "-c64",
                f"-d{int(seconds)}s",
                "-s",
                str(lua),
                f"{url}/v2/models/law/infer",
            ]
        ),
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60,
    )
    n = int(re.search(r"(\d+) requests in", res.stdout).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", res.stdout).group(1)), n, cpu


def hey(url: str, seconds: float) -> float:
    res, cpu = cpu_run(
        pinned(hey_command(url, 64, seconds)),
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60,
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", res.stdout).group(1))
    n = sum(int(x) for x in re.findall(r"\[\d{3}\]\s+(\d+) responses", res.stdout))
    return rps, n, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--rates", default="1000,2000,3000,4000,5000,6000,8000")
    args = p.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores (server on core 0, generator on core 1)")
    rates = [float(r) for r in args.rates.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="loadgen-capacity-") as tmp,
        LawServer("fixed:0", cpus="0") as server,
    ):
        work = Path(tmp)
        # CPU of start-up, imports and an idle schedule: subtracted from every rung
        base = inferops_rate(server.url, 10, args.seconds, work)
        ladder = []
        for rate in rates:
            r = inferops_rate(server.url, rate, args.seconds, work)
            r["us_per_req"] = max(0.0, r["cpu_s"] - base["cpu_s"]) / r["sent"] * 1e6
            ladder.append(r)
            print(
                f"inferops open loop {rate:6.0f} req/s: achieved {r['achieved']:7.1f}, "
                f"late {r['late_pct']:6.2f} %, CPU {r['us_per_req']:5.0f} us/req, "
                f"p99 {r['p99_ms']} ms",
                flush=True,
            )
        tools = {
            "stock Locust FastHttpUser (closed, 64 users)": stock_locust(
                server.url, args.seconds, work
            ),
            "wrk -t1 -c64 (closed)": wrk(server.url, args.seconds, work),
            "hey -c 64 (closed)": hey(server.url, args.seconds),
        }
    ok = [
        r
        for r in ladder
        if r["late_pct"] is not None and r["late_pct"] < 1.0 and r["achieved"] >= 0.97 * r["rate"]
    ]
    best_rate = max((r["rate"] for r in ok), default=0.0)
    sane = [r["us_per_req"] for r in ladder if r["late_pct"] is not None and r["late_pct"] < 50]
    us = min(sane) if sane else float("nan")
    print()
    print(f"{'generator, pinned to one core':46s} {'req/s':>8s} {'req per CPU-second':>20s}")
    print(f"{'inferops open loop, highest rung < 1 % late':46s} {best_rate:8.0f} {1e6 / us:20.0f}")
    for name, (rps, n, cpu) in tools.items():
        print(f"{name:46s} {rps:8.0f} {n / cpu if cpu else float('nan'):20.0f}")
    lrps, ln, lcpu = tools["stock Locust FastHttpUser (closed, 64 users)"]
    print(f"ratio inferops/stock Locust, req per CPU-second: {1e6 / us / (ln / lcpu):.2f}")
    print(
        f"ratio inferops/wrk, req per CPU-second: "
        f"{1e6 / us / (tools['wrk -t1 -c64 (closed)'][1] / tools['wrk -t1 -c64 (closed)'][2]):.2f}"
    )


if __name__ == "__main__":
    main()
