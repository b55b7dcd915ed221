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

Workers axis (``--workers-rates``): the same ladder with ``inferops bench
--workers 1`` and ``--workers 2`` (Locust workers sharing one global schedule),
printing the efficiency ratio (goal >= 1.8x with < 1 % late). With 3 or more cores
the workers get cores 1 and 2 (the master and the server on core 0). On 2 cores,
``--target nginx`` makes that ratio mean "2 workers on 2 cores vs 1": the server is a
private nginx answering from ``return`` directives (benchmarks/_nginx_target.py, a few
microseconds a request) on core 0, one worker gets core 1, two workers get cores 1 and
0 (sharing core 0 with nginx and the master). With the Python law server on 2 cores
the second worker would share the server's core, and the script says so.

Profile (``--profile-rate QPS``): one generator process under cProfile at that
rate, its own time grouped by where it goes (scheduling, greenlet spawning,
request building and parsing, socket calls, histogram recording, Locust events).
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

from benchmarks._nginx_target import NginxTarget  # noqa: E402
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


def ladder_best(ladder: list[dict]) -> float:
    """The highest rung with < 1 % late sends that reached 97 % of its rate."""
    ok = [
        r
        for r in ladder
        if r["late_pct"] is not None and r["late_pct"] < 1.0 and r["achieved"] >= 0.97 * r["rate"]
    ]
    return max((r["rate"] for r in ok), default=0.0)


def worker_cpus(workers: int, cheap_server: bool) -> str:
    """Worker k's core: k+1 while there are cores beyond the server's core 0; on 2 cores
    with a cheap server (nginx) the second worker takes core 0 beside it."""
    cores = os.cpu_count() or 1
    if cheap_server and cores == 2:
        return ",".join(str((1 - k) % 2) for k in range(workers))
    return ",".join(str(1 + k % max(1, cores - 1)) for k in range(workers))


def workers_rate(url: str, rate: float, seconds: float, work: Path, workers: int,
                 cheap_server: bool = False) -> dict:  # fmt: skip
    """``inferops bench --workers N``: the master on core 0, workers by ``worker_cpus``."""
    cpus = worker_cpus(workers, cheap_server)
    out = work / f"workers{workers}-{int(rate)}"
    cmd = [PY, "-m", "inferops", "bench", "--target", url, "--model", "law"]
    cmd += ["--rate", str(rate), "--duration", f"{seconds}s", "--warmup", "1s"]
    cmd += ["--out", str(out), "--overwrite", "--quiet", "--late-tolerance-ms", "1"]
    cmd += ["--workers", str(workers), "--worker-cpus", cpus]
    subprocess.run(
        ["taskset", "-c", "0", *cmd],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 90,
    )
    s = json.loads((out / "summary.json").read_text())
    return {
        "rate": rate,
        "achieved": s["achieved_qps"],
        "late_pct": s["late_sends_pct"],
        "workers_late": [n["late_sends_pct"] for n in s["workers"]["nodes"]],
        "p99_ms": s["latency_ms"]["p99"],
    }


def workers_axis(url: str, rates: list[float], seconds: float, work: Path,
                 cheap_server: bool = False) -> None:  # fmt: skip
    if cheap_server and (os.cpu_count() or 1) == 2:
        print("2 cores, nginx target on core 0: 1 worker on core 1; 2 workers on cores 1 "
              "and 0 (core 0 shared with nginx and the master)", flush=True)  # fmt: skip
    elif (os.cpu_count() or 1) < 3:
        print(
            "NOTE: fewer than 3 cores: worker 2 shares core 1 with worker 1 or the server's "
            "core; the efficiency ratio below is not the 2-cores-vs-1 figure",
            flush=True,
        )
    best = {}
    for n in (1, 2):
        ladder = []
        for rate in rates:
            r = workers_rate(url, rate, seconds, work, n, cheap_server)
            ladder.append(r)
            print(
                f"--workers {n} {rate:6.0f} req/s: achieved {r['achieved']:7.1f}, "
                f"late {r['late_pct']} % (per worker {r['workers_late']}), p99 {r['p99_ms']} ms",
                flush=True,
            )
            if r["late_pct"] is None or r["late_pct"] > 5:
                break  # far past this worker count's capacity
        best[n] = ladder_best(ladder)
    ratio = best[2] / best[1] if best[1] else float("nan")
    print(
        f"workers: 1 -> {best[1]:.0f} req/s, 2 -> {best[2]:.0f} req/s (< 1 % late); "
        f"efficiency ratio 2/1: {ratio:.2f} (goal >= 1.8)",
        flush=True,
    )


#: where a generator's own time goes, by the function that spends it (cProfile tottime)
PROFILE_GROUPS = (
    ("waiting in the event loop (idle, not CPU)", ("corecext.loop", "libev")),
    ("histogram recording (hdrh, inferops.measure)", ("/hdrh/", "/inferops/measure/")),
    ("request build/parse (geventhttpclient)", ("/geventhttpclient/",)),
    ("socket calls (send, recv, connect, select)", ("_socket.socket", "select")),
    ("greenlets: spawn, switch, sleep (gevent)", ("/gevent/", "greenlet")),
    ("scheduling (inferops.load: arrivals, split, users)", ("/inferops/load/",)),
    ("Locust events and stats", ("/locust/",)),
)
OTHER = "other (start-up, imports, the rest)"


def _profile_groups(url: str, rate: float, seconds: float, work: Path) -> tuple[dict, float]:
    import pstats

    prof = work / f"bench-{int(rate)}.prof"
    out = work / f"profile-{int(rate)}"
    cmd = [PY, "-m", "cProfile", "-o", str(prof), "-m", "inferops", "bench", "--target", url]
    cmd += ["--model", "law", "--rate", str(rate), "--duration", f"{seconds}s", "--warmup", "1s"]
    cmd += ["--out", str(out), "--overwrite", "--quiet", "--late-tolerance-ms", "1"]
    subprocess.run(pinned(cmd), cwd=ROOT, capture_output=True, timeout=seconds * 6 + 90)
    totals = dict.fromkeys([g for g, _ in PROFILE_GROUPS] + [OTHER], 0.0)
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(
        str(prof)
    ).stats.items():
        where = f"{filename}:{func}"
        group = next((g for g, marks in PROFILE_GROUPS if any(m in where for m in marks)), OTHER)
        totals[group] += tottime
    s = json.loads((out / "summary.json").read_text())
    return totals, s["requests"] * (seconds + 1) / seconds  # warm-up sends too


def profile(url: str, rate: float, seconds: float, work: Path) -> None:
    """cProfile a pinned generator at ``rate`` and at 10 req/s; per-request time per group
    is the difference over the difference in requests (start-up cancels out)."""
    base, base_sent = _profile_groups(url, 10.0, seconds, work)
    busy, sent = _profile_groups(url, rate, seconds, work)
    extra = {g: max(0.0, busy[g] - base[g]) for g in busy}
    cpu = {g: t for g, t in extra.items() if not g.startswith("waiting")}
    whole = sum(cpu.values())
    n = max(1.0, sent - base_sent)
    print(f"profile at {rate:.0f} req/s, minus 10 req/s ({n:.0f} more requests; cProfile")
    print("inflates small calls, so read shares, not absolute speed):")
    for group, t in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {group:52s} {100 * t / whole:5.1f} %  {t / n * 1e6:6.1f} us/req")


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
    p.add_argument(
        "--workers-rates",
        default="",
        help="ladder for the workers axis (--workers 1 vs 2), e.g. 3000,4000,5000,6000,8000,10000",
    )
    p.add_argument("--profile-rate", type=float, default=0, help="cProfile one generator here")
    p.add_argument("--skip-ladder", action="store_true", help="only the workers axis / profile")
    p.add_argument(
        "--target",
        choices=("law", "nginx"),
        default="law",
        help="the server on core 0: the Python law server (fixed:0) or a private nginx",
    )
    args = p.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores (server on core 0, generator on core 1)")
    rates = [float(r) for r in args.rates.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="loadgen-capacity-") as tmp,
        NginxTarget(cpu=0) if args.target == "nginx" else LawServer("fixed:0", cpus="0") as server,
    ):
        work = Path(tmp)
        if args.profile_rate:
            profile(server.url, args.profile_rate, args.seconds, work)
        if args.workers_rates:
            workers_axis(
                server.url,
                [float(r) for r in args.workers_rates.split(",")],
                args.seconds,
                work,
                cheap_server=args.target == "nginx",
            )
        if args.skip_ladder:
            return
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
    best_rate = ladder_best(ladder)
    sane = [r["us_per_req"] for r in ladder if r["late_pct"] is not None and r["late_pct"] < 50]
    us = min(sane) if sane else float("nan")
    print()
    print(f"{'generator, pinned to one core':46s} {'req/s':>8s} {'req per CPU-second':>20s}")
    print(f"{'inferops open loop, highest rung < 1 % late':46s} {best_rate:8.0f} {1e6 / us:20.0f}")
    for name, (rps, n, cpu) in tools.items():
        print(f"{name:46s} {rps:8.0f} {n / cpu if cpu else float('nan'):20.0f}")
    lrps, ln, lcpu = tools["stock Locust FastHttpUser (closed, 64 users)"]
    print(
        f"ratio per core, inferops < 1 % late / stock Locust's closed-loop ceiling: "
        f"{best_rate / lrps:.2f} (goal >= 1.0)"
    )
    print(f"ratio inferops/stock Locust, req per CPU-second: {1e6 / us / (ln / lcpu):.2f}")
    print(
        f"ratio inferops/wrk, req per CPU-second: "
        f"{1e6 / us / (tools['wrk -t1 -c64 (closed)'][1] / tools['wrk -t1 -c64 (closed)'][2]):.2f}"
    )


if __name__ == "__main__":
    main()
