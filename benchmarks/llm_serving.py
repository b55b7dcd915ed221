"""Continuous batching vs the naive one-at-a-time LLM server vs the raw engine (tinylm).

    .venv/bin/python benchmarks/llm_serving.py [--seconds 15] [--tpot-ms 50,100] [--json out.json]

Setup: two ``inferops serve --model tinylm --threads 1`` processes pinned to the
same core (``taskset -c 1``), ``continuous`` (``--max-num-seqs 32``) and ``naive``
(``--max-num-seqs 1``); this script's client pinned to the other core. At each
offered rate of a ladder, one server is driven and then the other (the idle one
costs nothing), so a neighbour's load on a shared machine hits both alike; a
server leaves the ladder after two rates in a row it could not keep up with.

Each request is a streaming ``/v1/completions`` call with a 64-byte prompt (65
tokens with BOS), ``max_tokens`` 128 and ``ignore_eos`` (exactly 128 tokens),
greedy. Requests arrive open-loop (Poisson, the same arrival times for both
servers) for ``--seconds``; latencies count from each request's scheduled time,
so a client falling behind shows up as latency (no coordinated omission).

Per request: TTFT (scheduled -> first token chunk) and TPOT ((last - first) /
(tokens - 1)). Per rate: output tokens/s of the completed requests, from the
first arrival to the last token, P50/P99 TTFT and TPOT, and whether the server kept up (every
request finished and P99 TTFT <= --keep-up-ttft-ms: a growing queue shows there).

For each P99 TPOT bound (``--tpot-ms``):
  * **tokens/s at the bound**: the best output tokens/s over the rates the server
    kept up with at P99 TPOT <= bound;
  * **goodput**: vLLM ``benchmark_serving``'s definition, requests meeting TTFT <=
    --ttft-ms AND TPOT <= bound per second (and their output tokens/s), best rate;
  * **raw ceiling**: ONNX Runtime alone (no HTTP, no scheduler), pinned to the
    server's core: decode tokens/s at the best batch whose step time fits the
    bound, KV cache at the workload's mean context; the server's fraction of it.

The client is a small asyncio + httpx streaming client inside this script (the
load engine's ``openai`` protocol does not exist yet; ``inferops bench
--protocol openai`` will replace it). The machine may be shared: the load
average is printed with every rate; each rate runs once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inferops.models import resolve  # noqa: E402
from inferops.server.process import ServerProcess  # noqa: E402

RAW_BATCHES = (1, 2, 4, 8, 16, 24, 32, 48, 64)
DEFAULT_RATES = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20)


# -- raw engine (a child pinned to the server core) -----------------------------------------


def raw_engine(context: int, seconds: float) -> dict:
    """Decode steps through ONNX Runtime alone at each batch, KV cache of ``context`` tokens."""
    import onnxruntime as ort

    from inferops.server.llm.model import read_spec

    path = resolve("tinylm")
    spec = read_spec(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    rows = []
    for batch in RAW_BATCHES:
        feeds = {
            "input_ids": np.zeros((batch, 1), np.int64),
            "attention_mask": np.ones((batch, context + 1), np.int64),
            "position_ids": np.full((batch, 1), context, np.int64),
        }
        shape = (batch, spec.heads, context, spec.head_dim)
        for i in range(spec.layers):
            for kind in ("key", "value"):
                feeds[f"past_key_values.{i}.{kind}"] = rng.standard_normal(shape, np.float32)
        session.run(None, feeds)
        steps = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(steps) < 5:
            t = time.perf_counter()
            session.run(None, feeds)
            steps.append(time.perf_counter() - t)
        step_ms = float(np.median(steps)) * 1000
        rows.append(
            {
                "batch": batch,
                "step_ms": step_ms,
                "ms_per_token": step_ms / batch,
                "tokens_per_s": batch * 1000 / step_ms,
            }
        )
    return {"context": context, "rows": rows}


def run_raw_child(cpu: str, context: int, seconds: float) -> dict:
    cmd = ["taskset", "-c", cpu, sys.executable, __file__, "--raw-only", str(context)]
    cmd += ["--raw-seconds", str(seconds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


# -- open-loop streaming client -------------------------------------------------------------


async def _one(client, url: str, body: dict, scheduled: float, out: list) -> None:
    first = last = None
    tokens = 0
    try:
        async with client.stream("POST", url, json=body) as resp:
            if resp.status_code != 200:
                await resp.aread()
                out.append({"ok": False, "status": resp.status_code})
                return
            async for line in resp.aiter_lines():
                # one chunk per generated token; the usage chunk has "choices":[]
                if line.startswith("data: {") and '"choices":[{' in line:
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    last = now
                    tokens += 1
    except Exception as exc:  # connection trouble counts as a failed request
        out.append({"ok": False, "status": type(exc).__name__})
        return
    if first is None:
        out.append({"ok": False, "status": "no tokens"})
        return
    out.append(
        {
            "ok": True,
            "tokens": tokens,
            "ttft": first - scheduled,
            "tpot": (last - first) / (tokens - 1) if tokens > 1 else 0.0,
            "done": last,
        }
    )


async def open_loop(url: str, rate: float, seconds: float, body: dict, grace: float, seed: int):
    import httpx

    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, int(rate * seconds * 3) + 10))
    arrivals = arrivals[arrivals < seconds]
    results: list[dict] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=seconds + grace + 30, limits=limits) as client:
        start = time.perf_counter()
        tasks = []
        for at in arrivals:
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, url, body, start + at, results)))
        _, pending = (
            await asyncio.wait(
                tasks, timeout=max(0.1, start + seconds + grace - time.perf_counter())
            )
            if tasks
            else (None, [])
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return start, len(arrivals), len(pending), results


def summarize(rate, start, seconds, sent, unfinished, results, args) -> dict:
    ok = [r for r in results if r["ok"]]
    # over the whole run, from the first arrival to the last token (not the arrival window)
    elapsed = max([seconds] + [r["done"] - start for r in ok])
    ttft = np.array([r["ttft"] for r in ok]) * 1000 if ok else np.array([np.inf])
    tpot = np.array([r["tpot"] for r in ok]) * 1000 if ok else np.array([np.inf])
    p99_ttft = float(np.percentile(ttft, 99))
    row = {
        "rate": rate,
        "sent": sent,
        "completed": len(ok),
        "failed": sent - len(ok),
        "output_tokens_per_s": sum(r["tokens"] for r in ok) / elapsed,
        "p50_ttft_ms": float(np.percentile(ttft, 50)),
        "p99_ttft_ms": p99_ttft,
        "p50_tpot_ms": float(np.percentile(tpot, 50)),
        "p99_tpot_ms": float(np.percentile(tpot, 99)),
        "kept_up": unfinished == 0 and len(ok) == sent and p99_ttft <= args.keep_up_ttft_ms,
        "goodput": {},
    }
    for bound in args.tpot_ms:
        good = [r for r in ok if r["ttft"] * 1000 <= args.ttft_ms and r["tpot"] * 1000 <= bound]
        row["goodput"][str(bound)] = {
            "rps": len(good) / elapsed,
            "tokens_per_s": sum(r["tokens"] for r in good) / elapsed,
        }
    return row


def bench_servers(servers: dict[str, int], args, body: dict) -> dict[str, list[dict]]:
    """Both servers up at once (the idle one costs nothing); each rate runs on one, then the
    other, so a neighbour's load on this shared machine hits both alike."""
    procs = {}
    for label, seqs in servers.items():
        extra = ["--threads", "1", "--max-num-seqs", str(seqs), "--max-queue-size", "1024"]
        extra += ["--kv-cache-bytes", "2G"]
        procs[label] = ServerProcess("tinylm", cpus=args.server_cpu, extra_args=extra, env=_env())
    rows: dict[str, list[dict]] = {label: [] for label in servers}
    misses = dict.fromkeys(servers, 0)
    try:
        for proc in procs.values():
            proc.start()
            asyncio.run(open_loop(proc.url + "/v1/completions", 2.0, 2.0, body, 30, seed=99))
        for i, rate in enumerate(args.rates):
            for label, proc in procs.items():
                if misses[label] >= 2:  # two rates in a row it could not keep up with
                    continue
                start, sent, unfinished, results = asyncio.run(
                    open_loop(proc.url + "/v1/completions", rate, args.seconds, body, args.grace, i)
                )
                row = summarize(rate, start, args.seconds, sent, unfinished, results, args)
                row["loadavg"] = os.getloadavg()[0]
                rows[label].append(row)
                print(
                    f"  {label:10s} {rate:5.2f} req/s: {row['output_tokens_per_s']:6.0f} tok/s  "
                    f"TTFT p50/p99 {row['p50_ttft_ms']:6.0f}/{row['p99_ttft_ms']:6.0f} ms  "
                    f"TPOT p50/p99 {row['p50_tpot_ms']:5.1f}/{row['p99_tpot_ms']:5.1f} ms  "
                    f"{'kept up' if row['kept_up'] else 'behind '}  ({row['completed']}/{sent})  "
                    f"load {row['loadavg']:.1f}",
                    flush=True,
                )
                misses[label] = 0 if row["kept_up"] else misses[label] + 1
                if not row["kept_up"]:
                    time.sleep(2)  # let a backlog drain before the next run
            if all(m >= 2 for m in misses.values()):
                break
    finally:
        for proc in procs.values():
            proc.stop()
    return rows


def at_bound(rows: list[dict], bound: float) -> dict | None:
    """The best output tokens/s over the rates the server kept up with at P99 TPOT <= bound."""
    fits = [r for r in rows if r["kept_up"] and r["p99_tpot_ms"] <= bound]
    return max(fits, key=lambda r: r["output_tokens_per_s"]) if fits else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="arrival window per rate")
    parser.add_argument("--grace", type=float, default=20.0, help="drain time after the window")
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=list(DEFAULT_RATES)
    )
    parser.add_argument("--prompt-bytes", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--tpot-ms",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[50.0, 100.0],
        help="P99 TPOT bounds (and goodput TPOT SLOs), comma-separated (default 50,100)",
    )
    parser.add_argument("--ttft-ms", type=float, default=1000.0, help="TTFT SLO for goodput")
    parser.add_argument("--keep-up-ttft-ms", type=float, default=5000.0)
    parser.add_argument("--max-num-seqs", type=int, default=32)
    parser.add_argument("--server-cpu", default="1")
    parser.add_argument("--client-cpu", default="0")
    parser.add_argument("--raw-seconds", type=float, default=2.0)
    parser.add_argument(
        "--raw-only",
        type=int,
        metavar="CONTEXT",
        help="only time decode steps of the raw engine with a KV cache of CONTEXT tokens, in "
        "this process (pin it: taskset -c 1 ...); prints a table, then the JSON on one line",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.raw_only is not None:
        raw = raw_engine(args.raw_only, args.raw_seconds)
        for r in raw["rows"]:
            print(
                f"context {raw['context']} batch {r['batch']:3d}: step {r['step_ms']:6.2f} ms  "
                f"{r['ms_per_token']:6.3f} ms/token  {r['tokens_per_s']:7.0f} tok/s"
            )
        print(json.dumps(raw))
        return 0

    os.sched_setaffinity(0, {int(args.client_cpu)})
    resolve("tinylm")  # build into the cache once, outside any timing
    prompt = ("The quick brown fox jumps over the lazy dog. " * 4)[: args.prompt_bytes]
    body = {
        "model": "tinylm",
        "prompt": prompt,
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    mean_context = args.prompt_bytes + 1 + args.max_tokens // 2
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{started}, load average {os.getloadavg()[0]:.1f}")
    print(f"raw engine (ONNX Runtime, 1 thread, cpu {args.server_cpu}, context {mean_context}):")
    raw = run_raw_child(args.server_cpu, mean_context, args.raw_seconds)
    for r in raw["rows"]:
        print(
            f"  batch {r['batch']:3d}: step {r['step_ms']:6.2f} ms  "
            f"{r['ms_per_token']:6.3f} ms/token  {r['tokens_per_s']:7.0f} tok/s"
        )
    servers = {"continuous": args.max_num_seqs, "naive": 1}
    print(f"servers: continuous = --max-num-seqs {args.max_num_seqs}, naive = --max-num-seqs 1")
    rows = bench_servers(servers, args, body)
    results = {"raw": raw, "servers": rows, "args": {k: str(v) for k, v in vars(args).items()}}

    def ratio(a, b):
        return a / b if b else float("inf")

    print()
    print(
        f"workload: prompt {args.prompt_bytes + 1} tokens, {args.max_tokens} output tokens, "
        f"greedy; goodput SLO TTFT <= {args.ttft_ms:.0f} ms; load average now "
        f"{os.getloadavg()[0]:.1f}"
    )
    summary = {}
    for bound in args.tpot_ms:
        raw_rows = [r for r in raw["rows"] if r["step_ms"] <= bound] or raw["rows"][:1]
        ceiling = max(raw_rows, key=lambda r: r["tokens_per_s"])
        line = {}
        for label in servers:
            best_row = at_bound(rows[label], bound)
            goodput = max((r["goodput"][str(bound)] for r in rows[label]), key=lambda g: g["rps"])
            line[label] = {
                "tokens_per_s": best_row["output_tokens_per_s"] if best_row else 0.0,
                "rate": best_row["rate"] if best_row else None,
                "goodput_rps": goodput["rps"],
                "goodput_tokens_per_s": goodput["tokens_per_s"],
                "fraction_of_raw": (best_row["output_tokens_per_s"] if best_row else 0.0)
                / ceiling["tokens_per_s"],
            }
            print(
                f"P99 TPOT <= {bound:.0f} ms  {label:10s}: {line[label]['tokens_per_s']:6.0f} "
                f"output tok/s (at {line[label]['rate']} req/s), "
                f"{line[label]['fraction_of_raw']:.0%} of raw; goodput "
                f"{goodput['rps']:.2f} req/s = {goodput['tokens_per_s']:.0f} tok/s"
            )
        c, n = line["continuous"], line["naive"]
        print(
            f"P99 TPOT <= {bound:.0f} ms  continuous / naive: "
            f"{ratio(c['tokens_per_s'], n['tokens_per_s']):.1f}x tokens/s, "
            f"{ratio(c['goodput_rps'], n['goodput_rps']):.1f}x goodput; raw ceiling "
            f"{ceiling['tokens_per_s']:.0f} tok/s at batch {ceiling['batch']} "
            f"(step {ceiling['step_ms']:.1f} ms)"
        )
        summary[str(bound)] = {**line, "raw_ceiling": ceiling}
    # The naive server's TPOT stays low however loaded it is (requests queue instead), so
    # also compare with its saturated throughput, whatever its TTFT: the ratio least
    # flattering to continuous batching.
    peaks = {label: max(r["output_tokens_per_s"] for r in rows[label]) for label in servers}
    summary["peak_tokens_per_s"] = peaks
    for bound in args.tpot_ms:
        c = summary[str(bound)]["continuous"]["tokens_per_s"]
        print(
            f"P99 TPOT <= {bound:.0f} ms  continuous {c:.0f} tok/s vs naive saturated "
            f"{peaks['naive']:.0f} tok/s (any TTFT): {ratio(c, peaks['naive']):.1f}x"
        )
    results["summary"] = summary
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
