"""vLLM ``benchmark_serving``'s measuring method, re-implemented for side-by-side runs.

Not vLLM's code (vLLM is not installable here): its timing points, as in
``benchmarks/backend_request_func.py`` (``async_request_openai_chat_completions``)
and ``benchmarks/benchmark_serving.py`` of the vLLM repository:

* arrivals: Poisson at ``--request-rate`` (``asyncio.sleep`` between
  creations), each request a task; with ``--max-concurrency N`` a semaphore
  holds a task until one of N slots is free — a closed loop at a rate;
* ``st = perf_counter()`` is taken *inside* the slot, right before the POST:
  TTFT, ITL and latency count from the actual send, never from the arrival;
* TTFT = first chunk with non-empty ``delta.content`` − st; ITL = each content
  chunk − the chunk before it (of any kind); latency = ``[DONE]`` − st;
  TPOT = (latency − TTFT) / (output tokens − 1), tokens here = content chunks
  (vLLM re-tokenizes the text; the law server sends one token a chunk).

vLLM uses aiohttp; this uses httpx's async streaming (a declared dev
dependency) at the same points.
"""

from __future__ import annotations

import asyncio
import json
import random
import time


async def _one(client, url: str, body: dict, sem) -> dict | None:
    async def run():
        st = time.perf_counter()
        recent, ttft, itl, latency, chunks = st, 0.0, [], None, 0
        async with client.stream("POST", url, json=body) as resp:
            if resp.status_code != 200:
                return None
            async for line in resp.aiter_lines():
                line = line.strip()
                if not line:
                    continue
                chunk = line.removeprefix("data: ")
                if chunk == "[DONE]":
                    latency = time.perf_counter() - st
                    continue
                ts = time.perf_counter()
                data = json.loads(chunk)
                choices = data.get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    if ttft == 0.0:
                        ttft = ts - st
                    else:
                        itl.append(ts - recent)
                    chunks += 1
                recent = ts
        if latency is None or not chunks:
            return None
        return {
            "ttft": ttft,
            "itl": itl,
            "latency": latency,
            "tpot": (latency - ttft) / (chunks - 1) if chunks > 1 else None,
        }

    if sem is None:
        return await run()
    async with sem:
        return await run()


async def _bench(base_url: str, rate: float, seconds: float, max_concurrency, body: dict, seed):
    import httpx

    rng = random.Random(seed)
    sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        tasks, t_end = [], time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            tasks.append(asyncio.create_task(_one(client, "/v1/chat/completions", body, sem)))
            await asyncio.sleep(rng.expovariate(rate))
        return [r for r in await asyncio.gather(*tasks) if r is not None]


def run(
    base_url: str,
    *,
    rate: float,
    seconds: float,
    max_concurrency: int | None,
    max_tokens: int,
    seed: int = 0,
) -> dict:
    """P50/P90/P99 of TTFT, TPOT and ITL in ms (and the share of TTFTs over 100 ms)."""
    import numpy as np

    body = {
        "model": "law",
        "messages": [{"role": "user", "content": "the quick brown fox"}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    results = asyncio.run(_bench(base_url, rate, seconds, max_concurrency, body, seed))
    ttft = np.array([r["ttft"] for r in results]) * 1000
    tpot = np.array([r["tpot"] for r in results if r["tpot"] is not None]) * 1000
    itl = np.array([g for r in results for g in r["itl"]]) * 1000

    def qs(a):
        return {f"p{p}": float(np.percentile(a, p)) if len(a) else None for p in (50, 90, 99)}

    return {
        "requests": len(results),
        "ttft_ms": qs(ttft),
        "tpot_ms": qs(tpot),
        "itl_ms": qs(itl),
        "ttft_over_100ms": float((ttft > 100).mean()) if len(ttft) else None,
    }
