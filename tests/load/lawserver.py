"""A tiny HTTP inference stand-in whose latency follows a known law (ground truth).

Run: ``python -m tests.load.lawserver --law exp:4`` (prints ``PORT <n>`` once
listening on 127.0.0.1). It speaks just enough of both protocols for the load
engine: ``GET /v2/models/{name}`` metadata, ``POST /v2/models/{name}/infer``
and ``POST /predict``. Laws (milliseconds):

* ``fixed:D`` — every reply after D ms (concurrent, no queueing);
* ``exp:M`` — exponential with mean M ms, so P99 = M·ln 100 ≈ 4.605·M;
* ``stall:P:S:D`` — every P ms the whole server freezes for S ms: a request
  arriving inside a freeze waits for its end, then D ms. For uniform arrivals
  a fraction S/P is delayed uniformly in (0, S], so
  P99 = S·(1 − 0.01·P/S) + D;
* ``serial:D`` — one request at a time, D ms each (a blocking sleep): capacity
  is 1000/D req/s, beyond which the queue grows without bound.

Not a real server: a named fake for the engine's accuracy tests and benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time

META = {
    "name": "law",
    "versions": ["1"],
    "platform": "fake",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
}


def p99_ms(law: str) -> float:
    """Ground-truth P99 of a law's latency (open-loop, uniform arrivals, no queueing)."""
    kind, *vals = law.split(":")
    v = [float(x) for x in vals]
    if kind == "fixed":
        return v[0]
    if kind == "exp":
        return v[0] * math.log(100)
    if kind == "stall":
        period, stall, base = v
        return stall * (1 - 0.01 * period / stall) + base
    raise ValueError(f"no closed-form P99 for {law}")


class Law:
    def __init__(self, spec: str, seed: int = 1):
        self.kind, *vals = spec.split(":")
        self.v = [float(x) / 1000.0 for x in vals]
        self.rng = random.Random(seed)
        self.t0 = time.monotonic()
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        k, v = self.kind, self.v
        if k == "fixed":
            await asyncio.sleep(v[0])
        elif k == "exp":
            await asyncio.sleep(self.rng.expovariate(1.0 / v[0]))
        elif k == "stall":
            period, stall, base = v
            phase = (time.monotonic() - self.t0) % period
            if phase < stall:
                await asyncio.sleep(stall - phase)
            await asyncio.sleep(base)
        elif k == "serial":
            time.sleep(v[0])  # blocks the loop on purpose: strictly serial
        else:
            raise SystemExit(f"unknown law {self.kind}")


async def handle(reader, writer, law: Law, token: str | None) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, val = line.split(":", 1)
                    headers[k.strip().lower()] = val.strip()
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            status, out = 200, b""
            if token and path != "/health" and headers.get("authorization") != f"Bearer {token}":
                status, out = 401, b'{"error":"unauthorized"}'
            elif method == "GET" and path.startswith("/v2/models/"):
                out = json.dumps(META).encode()
            elif method == "POST" and (path == "/predict" or path.endswith("/infer")):
                try:
                    json.loads(body)
                except ValueError:
                    status, out = 400, b'{"error":"bad json"}'
                else:
                    await law.wait()
                    out = b'{"model":"law","model_name":"law","outputs":[[0.5,0.5]]}'
            elif path == "/health":
                out = b'{"status":"ok"}'
            else:
                status, out = 404, b'{"error":"not found"}'
            reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
            writer.write(
                f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(out)}\r\n\r\n".encode()
                + out
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main_async(args) -> None:
    law = Law(args.law)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, law, args.token), "127.0.0.1", args.port, backlog=4096
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--law", default="fixed:1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token")
    args = p.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
