"""Continuous batching vs the naive one-at-a-time LLM server vs the raw engine (tinylm).

    .venv/bin/python benchmarks/llm_serving.py [--seconds 15] [--rates 1,2,3,...]

Setup: ``inferops serve --model tinylm --threads 1`` pinned to one core
(``taskset -c 1``); this script's client pinned to the other core. Each request
is a streaming ``/v1/completions`` call with a 64-byte prompt (65 tokens with
BOS), ``max_tokens`` 128 and ``ignore_eos`` (every request generates exactly 128
tokens), greedy. Requests arrive open-loop (Poisson) at each offered rate of a
ladder for ``--seconds``; latencies count from each request's scheduled time,
so a client falling behind shows up as latency (no coordinated omission).

Per request: TTFT (scheduled -> first token chunk) and TPOT ((last - first) /
(tokens - 1)). Per rate: output tokens/s of the completed requests over the
arrival window, P99 TTFT and P99 TPOT, and goodput (vLLM's ``benchmark_serving``
definition: requests meeting TTFT <= --ttft-ms AND TPOT <= --tpot-ms, per second).

Compared, for two servers:
  * ``continuous`` - ``--max-num-seqs 32`` (continuous batching)
  * ``naive``      - ``--max-num-seqs 1`` (one request at a time)

  * **tokens/s at the P99 TPOT bound**: the best output tokens/s over the rates
    where P99 TPOT <= --tpot-ms and the server kept up (every request finished,
    P99 TTFT <= --keep-up-ttft-ms: a growing queue shows up there);
  * **goodput**: the best over the rates, in requests/s and output tokens/s;
  * **raw ceiling**: ONNX Runtime alone (no HTTP, no scheduler), pinned to the
    server's core: decode tokens/s at the best batch whose step time stays under
    the TPOT bound, at the workload's mean context; the server's fraction of it.

The client is a small asyncio + httpx streaming client inside this script (the
load engine's ``openai`` protocol does not exist yet; ``inferops bench
--protocol openai`` will replace it). The machine may be shared: numbers are
noisy, and each rate runs once.
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


def raw_engine(context: int, seconds: float, tpot_ms: float) -> dict:
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
    within = [r for r in rows if r["step_ms"] <= tpot_ms] or rows[:1]
    best = max(within, key=lambda r: r["tokens_per_s"])
    return {"context": context, "rows": rows, "best": best}


def run_raw_child(cpu: str, context: int, seconds: float, tpot_ms: float) -> dict:
    cmd = ["taskset", "-c", cpu, sys.executable, __file__, "--raw-child", str(context)]
    cmd += ["--raw-seconds", str(seconds), "--tpot-ms", str(tpot_ms)]
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


def summarize(rate, seconds, sent, unfinished, results, args) -> dict:
    ok = [r for r in results if r["ok"]]
    ttft = np.array([r["ttft"] for r in ok]) * 1000 if ok else np.array([np.inf])
    tpot = np.array([r["tpot"] for r in ok]) * 1000 if ok else np.array([np.inf])
    good = [r for r in ok if r["ttft"] * 1000 <= args.ttft_ms and r["tpot"] * 1000 <= args.tpot_ms]
    p99_ttft, p99_tpot = float(np.percentile(ttft, 99)), float(np.percentile(tpot, 99))
    kept_up = unfinished == 0 and len(ok) == sent and p99_ttft <= args.keep_up_ttft_ms
    return {
        "rate": rate,
        "sent": sent,
        "completed": len(ok),
        "failed": sent - len(ok),
        "output_tokens_per_s": sum(r["tokens"] for r in ok) / seconds,
        "p50_ttft_ms": float(np.percentile(ttft, 50)),
        "p99_ttft_ms": p99_ttft,
        "p50_tpot_ms": float(np.percentile(tpot, 50)),
        "p99_tpot_ms": p99_tpot,
        "goodput_rps": len(good) / seconds,
        "goodput_tokens_per_s": sum(r["tokens"] for r in good) / seconds,
        "kept_up": kept_up,
        "within_tpot_bound": kept_up and p99_tpot <= args.tpot_ms,
    }


def bench_server(label: str, max_num_seqs: int, args, body: dict) -> list[dict]:
    extra = ["--threads", "1", "--max-num-seqs", str(max_num_seqs), "--max-queue-size", "1024"]
    extra += ["--kv-cache-bytes", "2G"]
    rows = []
    with ServerProcess("tinylm", cpus=args.server_cpu, extra_args=extra, env=_env()) as server:
        url = server.url + "/v1/completions"
        asyncio.run(open_loop(url, 2.0, 2.0, body, 30, seed=99))  # warm-up
        misses = 0
        for i, rate in enumerate(args.rates):
            start, sent, unfinished, results = asyncio.run(
                open_loop(url, rate, args.seconds, body, args.grace, seed=i)
            )
            row = summarize(rate, args.seconds, sent, unfinished, results, args)
            rows.append(row)
            print(
                f"  {label:10s} {rate:5.1f} req/s: {row['output_tokens_per_s']:7.0f} tok/s  "
                f"TTFT p50/p99 {row['p50_ttft_ms']:7.0f}/{row['p99_ttft_ms']:7.0f} ms  "
                f"TPOT p50/p99 {row['p50_tpot_ms']:5.1f}/{row['p99_tpot_ms']:5.1f} ms  "
                f"goodput {row['goodput_rps']:5.2f} req/s  "
                f"{'ok' if row['within_tpot_bound'] else 'over'}  ({row['completed']}/{sent})",
                flush=True,
            )
            misses = 0 if row["kept_up"] else misses + 1
            if misses >= 2:  # two rates in a row it could not keep up with: past saturation
                break
            if not row["kept_up"]:
                time.sleep(2)  # let a backlog drain before the next rate
    return rows


def best(rows: list[dict], key: str, where=lambda r: True) -> dict | None:
    chosen = [r for r in rows if where(r)]
    return max(chosen, key=lambda r: r[key]) if chosen else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="arrival window per rate")
    parser.add_argument("--grace", type=float, default=20.0, help="drain time after the window")
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=list(DEFAULT_RATES)
    )
    parser.add_argument("--prompt-bytes", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--tpot-ms", type=float, default=50.0, help="P99 TPOT bound and SLO")
    parser.add_argument("--ttft-ms", type=float, default=1000.0, help="TTFT SLO for goodput")
    parser.add_argument("--keep-up-ttft-ms", type=float, default=5000.0)
    parser.add_argument("--max-num-seqs", type=int, default=32)
    parser.add_argument("--server-cpu", default="1")
    parser.add_argument("--client-cpu", default="0")
    parser.add_argument("--raw-seconds", type=float, default=2.0)
    parser.add_argument("--raw-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.raw_child is not None:
        print(json.dumps(raw_engine(args.raw_child, args.raw_seconds, args.tpot_ms)))
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
    print(f"raw engine (ONNX Runtime, 1 thread, cpu {args.server_cpu}, context {mean_context}):")
    raw = run_raw_child(args.server_cpu, mean_context, args.raw_seconds, args.tpot_ms)
    for r in raw["rows"]:
        print(
            f"  batch {r['batch']:3d}: step {r['step_ms']:6.2f} ms  "
            f"{r['ms_per_token']:6.3f} ms/token  {r['tokens_per_s']:7.0f} tok/s"
        )
    results = {"raw": raw, "servers": {}, "args": {k: str(v) for k, v in vars(args).items()}}
    for label, seqs in (("continuous", args.max_num_seqs), ("naive", 1)):
        print(f"{label} (--max-num-seqs {seqs}):", flush=True)
        results["servers"][label] = bench_server(label, seqs, args, body)

    summary = {}
    for label, rows in results["servers"].items():
        at_bound = best(rows, "output_tokens_per_s", lambda r: r["within_tpot_bound"])
        goodput = best(rows, "goodput_rps")
        summary[label] = {
            "tokens_per_s_at_tpot_bound": at_bound["output_tokens_per_s"] if at_bound else 0.0,
            "rate_at_tpot_bound": at_bound["rate"] if at_bound else None,
            "goodput_rps": goodput["goodput_rps"] if goodput else 0.0,
            "goodput_tokens_per_s": goodput["goodput_tokens_per_s"] if goodput else 0.0,
        }
    results["summary"] = summary
    c, n = summary["continuous"], summary["naive"]
    ceiling = raw["best"]["tokens_per_s"]

    def ratio(a, b):
        return a / b if b else float("inf")

    print()
    print(
        f"workload: prompt {args.prompt_bytes + 1} tokens, {args.max_tokens} output tokens, greedy"
    )
    print(
        f"P99 TPOT bound {args.tpot_ms:.0f} ms; goodput SLOs TTFT <= {args.ttft_ms:.0f} ms, TPOT <= {args.tpot_ms:.0f} ms"
    )
    for label, s in summary.items():
        print(
            f"{label:10s}: {s['tokens_per_s_at_tpot_bound']:7.0f} output tok/s at the TPOT bound "
            f"(at {s['rate_at_tpot_bound']} req/s); goodput {s['goodput_rps']:.2f} req/s = "
            f"{s['goodput_tokens_per_s']:.0f} tok/s; {ratio(s['tokens_per_s_at_tpot_bound'], ceiling):.0%} of raw"
        )
    print(
        f"raw ceiling: {ceiling:.0f} decode tok/s at batch {raw['best']['batch']} "
        f"(step {raw['best']['step_ms']:.1f} ms); batch 1: {raw['rows'][0]['tokens_per_s']:.0f} tok/s"
    )
    print(
        f"continuous / naive: {ratio(c['tokens_per_s_at_tpot_bound'], n['tokens_per_s_at_tpot_bound']):.1f}x "
        f"tokens/s at the TPOT bound, {ratio(c['goodput_rps'], n['goodput_rps']):.1f}x goodput"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
