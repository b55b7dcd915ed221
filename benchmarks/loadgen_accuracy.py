"""How close is each load generator's P99 to the truth? inferops open loop vs stock tools.

Side by side in one run, against law servers whose latency law has a known P99
(tests/load/lawserver.py, a named fake):

* ``exp:4`` — exponential service, mean 4 ms: P99 = 4·ln 100 = 18.4 ms;
* ``stall:1000:200:1`` — the server freezes 200 ms of every second: a random
  arrival's P99 is 191 ms, which is what a user arriving at random sees.

Generators: inferops open loop (Poisson, 200 req/s), inferops closed loop and
stock Locust (FastHttpUser, 8 users), and ``hey -c 8``. Prints each P99, its
error against the truth and the ratio of errors. Usage:
``.venv/bin/python benchmarks/loadgen_accuracy.py [--seconds 10]``.
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

from benchmarks._stock import (  # noqa: E402
    hey_command,
    stock_locust_aggregate,
    stock_locust_command,
)
from tests.load.lawserver import p99_ms  # noqa: E402
from tests.load.procs import LawServer  # noqa: E402

PY = sys.executable
USERS = 8


def inferops(url: str, load: list[str], seconds: float, out: Path) -> float:
    subprocess.run(
        [
            PY,
            "-m",
            "inferops",
            "bench",
            "--target",
            url,
            "--model",
            "law",
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
    return json.loads((out / "summary.json").read_text())["latency_ms"]["p99"]


def stock_locust(url: str, seconds: float, work: Path) -> float:
    argv, prefix = stock_locust_command(url, USERS, seconds, work)
    subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=seconds * 4 + 60)
    return float(stock_locust_aggregate(prefix)["99%"])


def hey(url: str, seconds: float) -> float:
    res = subprocess.run(
        hey_command(url, USERS, seconds), capture_output=True, text=True, timeout=seconds * 4 + 60
    )
    return float(re.search(r"99%+ in ([\d.]+) secs", res.stdout).group(1)) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="loadgen-accuracy-") as tmp:
        work = Path(tmp)
        for law in ("exp:4", "stall:1000:200:1"):
            truth = p99_ms(law)
            with LawServer(law) as server:
                got = {
                    "inferops open loop (200 req/s)": inferops(
                        server.url, ["--rate", "200"], args.seconds, work / "open"
                    ),
                    f"inferops closed loop ({USERS} users)": inferops(
                        server.url, ["--users", str(USERS)], args.seconds, work / "closed"
                    ),
                    f"stock Locust FastHttpUser ({USERS} users)": stock_locust(
                        server.url, args.seconds, work
                    ),
                    f"hey -c {USERS}": hey(server.url, args.seconds),
                }
            results[law] = (truth, got)
            print(f"\nlaw {law}: true P99 {truth:.1f} ms")
            for name, value in got.items():
                err = (value - truth) / truth * 100
                print(f"  {name:40s} P99 {value:8.1f} ms  error {err:+7.1f} %")
            errs = {k: abs(v - truth) / truth for k, v in got.items()}
            ours = errs["inferops open loop (200 req/s)"]
            for name, e in errs.items():
                if not name.startswith("inferops open") and ours > 0:
                    print(f"  |error| {name} / inferops open loop: {e / ours:.1f}x")


if __name__ == "__main__":
    main()
