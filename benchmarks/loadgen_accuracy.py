"""How close is each load generator's P99 to the truth? inferops open loop vs stock tools.

Side by side in one run, against law servers whose latency law has a known P99
(tests/load/lawserver.py, a named fake):

* ``exp:4`` — exponential service, mean 4 ms: P99 = 4·ln 100 = 18.4 ms;
* ``stall:1000:200:1`` — the server freezes 200 ms of every second: a random
  arrival's P99 is 191 ms, which is what a user arriving at random sees.

Generators: inferops open loop (Poisson, 200 req/s), inferops closed loop and
stock Locust (FastHttpUser, 8 users), and ``hey -c 8``. Prints each P99, its
error against the truth and the ratio of errors.

LLM streaming (``--cases llm``), against the SSE law server
(tests/endpoints/sse_lawserver.py, a named fake) whose TTFT and ITL laws are known:

* ``uniform`` — TTFT uniform in [80, 120] ms, ITL uniform in [60, 80] ms: the
  measured TTFT and ITL P50/P99 of ``inferops bench --protocol openai`` and of
  vLLM ``benchmark_serving``'s method (benchmarks/_vllm_method.py) vs the truth;
* ``stall`` — the server freezes 500 ms of every 5 s (TTFT 20 ms otherwise, ITL
  5 ms, 4 tokens), 50 req/s: inferops open loop (TTFT from the intended send)
  vs vLLM's method uncapped and with ``--max-concurrency 2`` (a closed loop at
  a rate, TTFT from the actual send) vs inferops closed loop (2 users): what
  coordinated omission does to TTFT. The truth: 8.4 % of arrivals wait more
  than 80 ms for the freeze to end (TTFT > 100 ms), P99 = 470 ms.

Usage: ``.venv/bin/python benchmarks/loadgen_accuracy.py [--seconds 10] [--cases http,llm]``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _vllm_method  # noqa: E402
from benchmarks._stock import (  # noqa: E402
    hey_command,
    stock_locust_aggregate,
    stock_locust_command,
)
from tests.endpoints.servers import SSELawServer  # noqa: E402
from tests.endpoints.sse_lawserver import quantile_ms  # noqa: E402
from tests.load.lawserver import p99_ms  # noqa: E402
from tests.load.procs import LawServer  # noqa: E402

PY = sys.executable
USERS = 8


def inferops(url: str, load: list[str], seconds: float, out: Path, *, llm: bool = False):
    """P99 latency of one ``inferops bench`` run (``llm``: its whole ``llm`` object)."""
    subprocess.run(
        [
            PY,
            "-m",
            "inferops",
            "bench",
            "--target",
            url,
            *(() if llm else ("--model", "law")),
            *load,
            "--duration",
            f"{seconds}s",
            "--warmup",
            "1s",
            "--out",
            str(out),
            "--overwrite",
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 60,
    )
    summary = json.loads((out / "summary.json").read_text())
    return summary["llm"] if llm else summary["latency_ms"]["p99"]


def stock_locust(url: str, seconds: float, work: Path) -> float:
    argv, prefix = stock_locust_command(url, USERS, seconds, work)
    subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=seconds * 4 + 60)
    return float(stock_locust_aggregate(prefix)["99%"])


def hey(url: str, seconds: float) -> float:
    res = subprocess.run(
        hey_command(url, USERS, seconds), capture_output=True, text=True, timeout=seconds * 4 + 60
    )
    return float(re.search(r"99%+ in ([\d.]+) secs", res.stdout).group(1)) * 1000


def http_cases(seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="loadgen-accuracy-") as tmp:
        work = Path(tmp)
        for law in ("exp:4", "stall:1000:200:1"):
            truth = p99_ms(law)
            with LawServer(law) as server:
                got = {
                    "inferops open loop (200 req/s)": inferops(
                        server.url, ["--rate", "200"], seconds, work / "open"
                    ),
                    f"inferops closed loop ({USERS} users)": inferops(
                        server.url, ["--users", str(USERS)], seconds, work / "closed"
                    ),
                    f"stock Locust FastHttpUser ({USERS} users)": stock_locust(
                        server.url, seconds, work
                    ),
                    f"hey -c {USERS}": hey(server.url, seconds),
                }
            print(f"\nlaw {law}: true P99 {truth:.1f} ms")
            for name, value in got.items():
                err = (value - truth) / truth * 100
                print(f"  {name:40s} P99 {value:8.1f} ms  error {err:+7.1f} %")
            errs = {k: abs(v - truth) / truth for k, v in got.items()}
            ours = errs["inferops open loop (200 req/s)"]
            for name, e in errs.items():
                if not name.startswith("inferops open") and ours > 0:
                    print(f"  |error| {name} / inferops open loop: {e / ours:.1f}x")


LLM_RATE = 20
LLM_TOKENS = 8


def _llm_row(name: str, got: dict, truth: dict, metric: str) -> None:
    cells = []
    for q in ("p50", "p90", "p99"):
        value, true = got[metric].get(q), truth[q]
        if value is None:
            continue
        cells.append(f"{q} {value:7.1f} ms ({(value - true) / true * 100:+6.1f} %)")
    print(f"  {name:46s} {metric[:-3]:4s} " + "  ".join(cells))


def llm_cases(seconds: float) -> None:
    openai_args = ["--protocol", "openai", "--max-tokens", str(LLM_TOKENS), "--prompt-tokens", "16"]
    with tempfile.TemporaryDirectory(prefix="loadgen-accuracy-llm-") as tmp:
        work = Path(tmp)
        # 1. accuracy against known TTFT and ITL laws
        ttft, itl = "uniform:80:120", "uniform:60:80"
        truth = {
            m: {q: quantile_ms(law, p) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
            for m, law in (("ttft_ms", ttft), ("itl_ms", itl))
        }
        print(f"\nSSE law server: TTFT {ttft} ms, ITL {itl} ms, {LLM_TOKENS} tokens")
        for m in truth:
            print(
                f"  truth {m[:-3]:4s} " + "  ".join(f"{q} {v:.1f} ms" for q, v in truth[m].items())
            )
        with SSELawServer("--ttft", ttft, "--itl", itl) as server:
            got = {
                f"inferops open loop ({LLM_RATE} req/s)": inferops(
                    server.url,
                    [*openai_args, "--rate", str(LLM_RATE)],
                    seconds,
                    work / "law",
                    llm=True,
                ),
                f"vLLM method ({LLM_RATE} req/s, uncapped)": _vllm_method.run(
                    server.url,
                    rate=LLM_RATE,
                    seconds=seconds,
                    max_concurrency=None,
                    max_tokens=LLM_TOKENS,
                ),
            }
        for name, g in got.items():
            for m in truth:
                _llm_row(name, g, truth[m], m)
        # 2. a stalling stream server: coordinated omission in TTFT
        stall, rate, tokens = "stall:5000:500:20", 50, 4
        stall_args = ["--protocol", "openai", "--max-tokens", str(tokens), "--prompt-tokens", "16"]
        true_ttft = {
            q: quantile_ms(stall, p) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }
        true_share = (500 - 80) / 5000  # arrivals that wait > 80 ms for the freeze to end
        print(f"\nstalling SSE server: TTFT law {stall} (500 ms frozen of every 5 s), ITL 5 ms")
        print(
            "  truth TTFT "
            + "  ".join(f"{q} {v:.1f} ms" for q, v in true_ttft.items())
            + f"  share > 100 ms {true_share:.1%}"
        )
        with SSELawServer("--ttft", stall, "--itl", "fixed:5") as server:
            got = {
                f"inferops open loop ({rate} req/s, from intended send)": _with_share(
                    inferops(
                        server.url,
                        [*stall_args, "--rate", str(rate)],
                        seconds,
                        work / "stall-open",
                        llm=True,
                    ),
                    work / "stall-open",
                ),
                f"vLLM method ({rate} req/s, uncapped)": _vllm_method.run(
                    server.url,
                    rate=rate,
                    seconds=seconds,
                    max_concurrency=None,
                    max_tokens=tokens,
                ),
                f"vLLM method ({rate} req/s, --max-concurrency 2)": _vllm_method.run(
                    server.url,
                    rate=rate,
                    seconds=seconds,
                    max_concurrency=2,
                    max_tokens=tokens,
                ),
                "inferops closed loop (2 users, from actual send)": _with_share(
                    inferops(
                        server.url,
                        [*stall_args, "--users", "2"],
                        seconds,
                        work / "stall-closed",
                        llm=True,
                    ),
                    work / "stall-closed",
                ),
            }
        for name, g in got.items():
            _llm_row(name, g, true_ttft, "ttft_ms")
            share = g.get("ttft_over_100ms")
            print(f"  {'':46s} share of TTFT > 100 ms: {share:.1%} (truth {true_share:.1%})")
        ours = abs(got[next(iter(got))]["ttft_ms"]["p99"] - true_ttft["p99"])
        for name, g in list(got.items())[1:]:
            theirs = abs(g["ttft_ms"]["p99"] - true_ttft["p99"])
            if ours > 0:
                print(f"  |P99 TTFT error| {name} / inferops open loop: {theirs / ours:.1f}x")


def _with_share(llm: dict, folder: Path) -> dict:
    """Add the share of TTFTs over 100 ms, read from the run's ttft.hdr."""
    from inferops.measure.runformat import read_hdr

    hist = read_hdr(folder / "ttft.hdr")
    total = hist.get_total_count()
    at_or_below = sum(
        item.count_at_value_iterated_to
        for item in hist.get_recorded_iterator()
        if hist.get_highest_equivalent_value(item.value_iterated_to) <= 100_000
    )
    over = total - at_or_below
    return {**llm, "ttft_over_100ms": over / total if total else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--cases", default="http,llm", help="comma-separated: http, llm")
    args = p.parse_args()
    cases = set(args.cases.split(","))
    if "http" in cases:
        http_cases(args.seconds)
    if "llm" in cases:
        llm_cases(args.seconds)


if __name__ == "__main__":
    main()
