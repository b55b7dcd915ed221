"""An OpenAI-compatible streaming stand-in whose TTFT and ITL follow known laws.

A named fake (like ``tests/load/lawserver.py``): not an LLM, a stdlib asyncio
HTTP/1.1 server that answers ``POST /v1/chat/completions`` and
``POST /v1/completions`` with ``"stream": true`` as Server-Sent Events, the way
vLLM and the OpenAI API do (chunked transfer encoding, keep-alive, one
``data: {...}`` event per chunk, ``data: [DONE]`` at the end), so the load
generator's TTFT/ITL/TPOT and token counts can be checked against the truth.

Run: ``python -m tests.endpoints.sse_lawserver --ttft uniform:80:120 --itl fixed:20``
(prints ``PORT <n>`` once listening on 127.0.0.1).

Timing (milliseconds), measured from the moment the request body is read:

* the role chunk (``delta: {"role": "assistant"}``, no content) goes out at once:
  it is *not* a token, and a client that counts it as the first token is wrong;
* the first content chunk follows after a TTFT drawn from ``--ttft``;
* each next content chunk follows after a gap drawn from ``--itl``.

Laws: ``fixed:D``; ``uniform:A:B``; ``exp:M`` (mean M); ``stall:P:S:D`` (TTFT
only: every P ms the whole server freezes for S ms; a request arriving inside a
freeze waits for its end, then D ms). :func:`quantile_ms` gives the truth.

Capacity: ``--slots N`` lets at most N streams generate at once (the others
wait for a slot before their TTFT clock starts, as requests queue for a
continuous-batching engine's KV cache), so TTFT grows with load past
N / (mean stream time) req/s and a sweep has a knee to find.

Tokens: a request gets exactly ``max_tokens`` (or ``max_completion_tokens``,
default 16) output tokens, ``--tokens-per-chunk`` of them per content chunk;
the prompt counts one token per whitespace-separated word. With
``stream_options.include_usage`` the last chunk before ``[DONE]`` carries
``usage`` (OpenAI's shape). ``--no-usage`` ignores the option (some servers do).

Failure modes, for every ``--fault-every``-th request (``--fault MODE``) or a
request whose body has ``"x_fault": MODE``:

* ``no-done`` — all tokens, then the stream ends without ``[DONE]``;
* ``truncated`` — the first token, then the connection closes mid-body;
* ``malformed`` — a ``data:`` line that is not JSON after the first token;
* ``error`` — HTTP 200, then ``data: {"error": {...}}`` mid-stream, then ``[DONE]``;
* ``stall`` — the first token, then nothing (connection held open);
* ``http-500`` — an HTTP 500 with an OpenAI error body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time

FAULTS = ("no-done", "truncated", "malformed", "error", "stall", "http-500")


def quantile_ms(law: str, q: float) -> float:
    """The law's q-quantile (0 < q < 1) in ms; ``stall`` for uniform arrivals."""
    kind, *vals = law.split(":")
    v = [float(x) for x in vals]
    if kind == "fixed":
        return v[0]
    if kind == "uniform":
        return v[0] + q * (v[1] - v[0])
    if kind == "exp":
        return -v[0] * math.log(1 - q)
    if kind == "stall":
        period, stall, base = v
        frozen = stall / period  # share of arrivals that wait, uniformly in (0, S]
        wait = 0.0 if q <= 1 - frozen else stall * (q - (1 - frozen)) / frozen
        return wait + base
    raise ValueError(f"unknown law {law!r}")


class Law:
    def __init__(self, spec: str, rng: random.Random, t0: float):
        self.spec = spec
        self.kind, *vals = spec.split(":")
        self.v = [float(x) / 1000.0 for x in vals]
        self.rng, self.t0 = rng, t0
        quantile_ms(spec, 0.5)  # unknown law: fail at start

    def draw(self, now: float) -> float:
        """Seconds to wait, for an event due from ``now`` (monotonic)."""
        k, v = self.kind, self.v
        if k == "fixed":
            return v[0]
        if k == "uniform":
            return self.rng.uniform(v[0], v[1])
        if k == "exp":
            return self.rng.expovariate(1.0 / v[0])
        period, stall, base = v  # stall
        phase = (now - self.t0) % period
        return (stall - phase if phase < stall else 0.0) + base


def _words(body: dict) -> int:
    if isinstance(body.get("prompt"), str):
        return len(body["prompt"].split())
    count = 0
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            count += len(content.split())
    return count


class Server:
    def __init__(self, args):
        self.args = args
        t0 = time.monotonic()
        rng = random.Random(args.seed)
        self.ttft = Law(args.ttft, rng, t0)
        self.itl = Law(args.itl, rng, t0)
        self.served = 0
        self.slots = asyncio.Semaphore(args.slots) if args.slots else None

    def fault_for(self, body: dict) -> str | None:
        if body.get("x_fault") in FAULTS:
            return body["x_fault"]
        if self.args.fault and self.served % self.args.fault_every == 0:
            return self.args.fault
        return None

    async def handle(self, reader, writer) -> None:
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
                raw = await reader.readexactly(length) if length else b""
                arrived = time.monotonic()
                token = self.args.token
                if token and headers.get("authorization") != f"Bearer {token}":
                    await self.reply(writer, 401, _error("invalid api key", "auth_error"))
                elif method == "GET" and path == "/v1/models":
                    models = {"object": "list", "data": [{"id": "law", "object": "model"}]}
                    await self.reply(writer, 200, models)
                elif method == "GET" and path == "/health":
                    await self.reply(writer, 200, {"status": "ok"})
                elif method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
                    try:
                        body = json.loads(raw)
                        if not isinstance(body, dict):
                            raise ValueError
                    except ValueError:
                        await self.reply(writer, 400, _error("body is not a JSON object"))
                        continue
                    self.served += 1
                    await self.complete(writer, path.endswith("chat/completions"), body, arrived)
                else:
                    await self.reply(writer, 404, _error(f"no route {method} {path}"))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def reply(self, writer, status: int, obj: dict) -> None:
        out = json.dumps(obj).encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(out)}\r\n\r\n".encode()
            + out
        )
        await writer.drain()

    async def complete(self, writer, chat: bool, body: dict, arrived: float) -> None:
        fault = self.fault_for(body)
        if fault == "http-500":
            await self.reply(writer, 500, _error("injected failure", "server_error"))
            return
        if body.get("stream") is not True:
            await self.reply(writer, 400, _error("this fake only streams: set stream=true"))
            return
        n_out = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        cid = f"{'chatcmpl' if chat else 'cmpl'}-{self.served}"
        created = int(time.time())

        def chunk(text: str | None, finish: str | None = None, role: bool = False) -> dict:
            if chat:
                delta = {"role": "assistant", "content": ""} if role else {}
                if text is not None:
                    delta["content"] = text
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                kind = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish}
                kind = "text_completion"
            return {
                "id": cid,
                "object": kind,
                "created": created,
                "model": "law",
                "choices": [choice],
            }

        async def send(payload) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            event = b"data: " + data + b"\n\n"
            writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            await writer.drain()

        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        if chat:
            await send(chunk(None, role=True))
        if self.slots is None:
            await self.generate(send, chunk, body, fault, chat, n_out, cid, created, arrived)
        else:
            async with self.slots:
                start = time.monotonic()
                await self.generate(send, chunk, body, fault, chat, n_out, cid, created, start)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def generate(self, send, chunk, body, fault, chat, n_out, cid, created, arrived):
        per_chunk = self.args.tokens_per_chunk
        due = arrived + self.ttft.draw(arrived)
        sent_tokens, index = 0, 0
        while sent_tokens < n_out:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            k = min(per_chunk, n_out - sent_tokens)
            text = "".join(f"t{sent_tokens + j} " for j in range(k))
            sent_tokens += k
            last = sent_tokens >= n_out
            await send(chunk(text, "length" if last and chat else None))
            if index == 0 and fault == "malformed":
                await send(b'{"choices": [{"delta": {"content": "oops"')
            if index == 0 and fault == "truncated":
                raise ConnectionError("truncated: connection closed mid-stream")
            if index == 0 and fault == "stall":
                await asyncio.sleep(3600)
            if index == 1 and fault == "error":
                await send(_error("injected mid-stream failure", "server_error"))
                break
            index += 1
            due += self.itl.draw(due)
        if not chat and fault != "error":
            await send(chunk("", "length"))
        usage = (body.get("stream_options") or {}).get("include_usage")
        if usage and not self.args.no_usage and fault != "error":
            prompt = _words(body)
            await send(
                {
                    "id": cid,
                    "object": chunk(None)["object"],
                    "created": created,
                    "model": "law",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": n_out,
                        "total_tokens": prompt + n_out,
                    },
                }
            )
        if fault != "no-done":  # no-done: the body ends cleanly, the connection stays open
            await send(b"[DONE]")


def _error(message: str, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "code": None}}


async def main_async(args) -> None:
    server = Server(args)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", args.port, backlog=4096)
    print(f"PORT {listener.sockets[0].getsockname()[1]}", flush=True)
    async with listener:
        await listener.serve_forever()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ttft", default="fixed:50", help="law of the time to first token, ms")
    p.add_argument("--itl", default="fixed:10", help="law of the gap between chunks, ms")
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--slots", type=int, default=0, help="streams generating at once (0: no cap)")
    p.add_argument("--no-usage", action="store_true", help="ignore stream_options.include_usage")
    p.add_argument("--fault", choices=FAULTS)
    p.add_argument("--fault-every", type=int, default=1, help="every Nth request (default all)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", help="require this bearer token")
    return p.parse_args(argv)


def main() -> None:
    try:
        asyncio.run(main_async(parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
