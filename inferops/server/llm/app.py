"""OpenAI-compatible routes for a decoder model, in front of the continuous batcher.

    POST /v1/completions         prompt -> text (SSE with "stream": true)
    POST /v1/chat/completions    messages -> assistant message (SSE with "stream": true)
    GET  /v1/models              the one served model
    /health /live /ready /v2/health/live /v2/health/ready /metrics   as the v2 server

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``:
400 bad values, 401 bad token, 404 unknown model or route, 413 body too large,
503 + Retry-After when the wait queue is full or the server is not ready or
stopping. Bad input never yields a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import threading
import time
import uuid
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from inferops.server import limits
from inferops.server.health import RETRY_AFTER_S, HealthRoutes
from inferops.server.llm import protocol
from inferops.server.llm.engine import Engine, NotRunning, QueueFull, Sequence, deliver_to_sinks
from inferops.server.llm.metrics import LLMMetrics
from inferops.server.llm.model import DecoderModel

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    500: "server_error",
    503: "server_overloaded",
}


def _json(doc, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers=headers, media_type="application/json")


def _error(status: int, message: str, param=None, code=None, headers=None) -> Response:
    body = protocol.error_body(
        message, _ERROR_TYPES.get(status, "invalid_request_error"), param, code
    )
    return _json(body, status, headers)


def _sse(doc) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


class _TooLarge(Exception):
    pass


class LLMServer(HealthRoutes):
    """Owns the decoder, the engine and the metrics; ``app`` is its ASGI application.

    ``config`` is the server's :class:`inferops.server.app.ServerConfig`; ``load()``
    (run off the event loop) loads and warms the model, starts the engine, then
    sets ``ready``.
    """

    def __init__(
        self,
        config,
        max_num_seqs: int = 32,
        max_num_batched_tokens: int = 2048,
        kv_cache_bytes: int = 512 * 1024**2,
    ):
        self.config = config
        self.name = config.name
        # a prompt is at most a context of byte tokens: 1 MiB of JSON is ample
        self.max_body_bytes = config.max_body_bytes or limits.MIN_BODY_BYTES
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.kv_cache_bytes = kv_cache_bytes
        self.metrics = LLMMetrics(config.name)
        self.model: DecoderModel | None = None
        self.engine: Engine | None = None
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.created = int(time.time())
        expected = f"Bearer {config.token}" if config.token else None
        self._expected_auth = expected.encode() if expected else None
        self.app = Starlette(
            routes=self._routes(),
            exception_handlers={404: self._not_found, 405: self._not_allowed},
            lifespan=self._lifespan,
        )

    @property
    def batcher(self) -> Engine | None:  # `inferops serve` reads batcher.max_batch_size
        return self.engine

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> None:
        model = DecoderModel(
            Path(self.config.model_path),
            self.config.backend,
            self.config.threads,
            spinning=self.config.allow_spinning,
        )
        self._warm_up(model)
        self.model = model
        self.engine = Engine(
            model,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            kv_cache_bytes=self.kv_cache_bytes,
            max_queue_size=self.config.max_queue_size,
            metrics=self.metrics,
            deliver=self._deliver,
        ).start()
        self.metrics.watch(self.engine)
        self.metrics.model_loaded.set(1)
        self.ready.set()

    def _warm_up(self, model: DecoderModel) -> None:
        # First runs allocate arenas and pick kernels; do that before saying "ready".
        for rows in dict.fromkeys([1, self.max_num_seqs]):
            _, batch = model.prefill([[0, 1]] * rows)
            model.decode(batch, [2] * rows)

    def _deliver(self, items) -> None:
        # Engine thread -> event loop, once per step for the whole batch.
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(deliver_to_sinks, items)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        self.loop = asyncio.get_running_loop()
        yield
        # uvicorn has drained the open streams by now; stop the engine.
        self.ready.clear()
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop)

    # -- routing ---------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/models", self.models),
            Route("/v1/models/{name}", self.models),
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.v2_ready),
            Route("/health", self.live),
            Route("/live", self.live),
            Route("/ready", self.simple_ready),
            Route("/metrics", self.prometheus),
        ]

    async def _not_found(self, request: Request, exc) -> Response:
        return _error(404, f"no route {request.url.path!r:.100}")

    async def _not_allowed(self, request: Request, exc) -> Response:
        return _error(405, f"method {request.method} not allowed on {request.url.path!r:.100}")

    def _unauthorized(self, request: Request) -> Response | None:
        if self._expected_auth is None:
            return None
        given = request.headers.get("authorization", "").encode("latin-1")
        if hmac.compare_digest(given, self._expected_auth):
            return None
        return _error(
            401,
            "missing or wrong bearer token",
            code="invalid_api_key",
            headers={"WWW-Authenticate": 'Bearer realm="inferops"'},
        )

    async def _body(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    # -- generation ------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, protocol.parse_completion)

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, protocol.parse_chat)

    async def _generate(self, request: Request, parse) -> Response:
        started = time.perf_counter()
        response = await self._admit(request, parse)
        if not isinstance(response, StreamingResponse):  # streams record themselves at the end
            self.metrics.observe_request(response.status_code, time.perf_counter() - started)
        return response

    async def _admit(self, request: Request, parse) -> Response:
        problem = self._unauthorized(request)
        if problem is not None:
            return problem
        if not self.ready.is_set():
            return _error(503, "model is not ready", headers={"Retry-After": RETRY_AFTER_S})
        engine = self.engine
        if len(engine.waiting) >= engine.max_queue_size:  # shed load before reading the body
            return self._overloaded("wait queue is full (--max-queue-size)")
        try:
            body = await self._body(request)
        except _TooLarge:
            return _error(
                413,
                f"request body is over the {self.max_body_bytes} byte limit (--max-body-bytes)",
            )
        try:
            req = parse(body, self.model.spec.bos_id)
            if req.model is not None and req.model != self.name:
                return _error(
                    404,
                    f"the model {req.model!r:.100} does not exist; this server serves {self.name!r}",
                    "model",
                    "model_not_found",
                )
            max_tokens = engine.check(req.prompt, req.params)
        except protocol.BadRequest as exc:
            return _error(400, str(exc), exc.param, exc.code)
        seq = Sequence(req.prompt, req.params, max_tokens, self.model.spec.eos_id)
        queue: asyncio.Queue = asyncio.Queue()
        seq.sink = queue.put_nowait
        try:
            engine.submit(seq)
        except QueueFull as exc:
            return self._overloaded(str(exc))
        except NotRunning as exc:
            return _error(503, str(exc), headers={"Retry-After": RETRY_AFTER_S})
        prefix = "chatcmpl" if req.kind == "chat" else "cmpl"
        reply = _Reply(f"{prefix}-{uuid.uuid4().hex}", self.name, req, seq)
        if req.stream:
            return StreamingResponse(
                self._stream(request, seq, queue, reply),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await self._collect(request, seq, queue, reply)

    def _overloaded(self, why: str) -> Response:
        return _error(
            503,
            f"server overloaded: {why}",
            code="overloaded",
            headers={"Retry-After": RETRY_AFTER_S},
        )

    async def _collect(self, request: Request, seq, queue: asyncio.Queue, reply) -> Response:
        """Non-streaming: wait for the end, or free the sequence if the client goes away."""

        async def until_finished():
            parts = []
            while True:
                event = await queue.get()
                parts.append(event.text)
                if event.finish_reason is not None:
                    return "".join(parts), event

        finished = asyncio.ensure_future(until_finished())
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not finished.done():
            finished.cancel()
            self.engine.cancel(seq)
            return Response(status_code=499)  # nobody reads it; recorded as client closed
        text, last = finished.result()
        if last.finish_reason == "error":
            status = 503 if last.error == "server stopped" else 500
            return _error(status, last.error or "generation failed")
        return _json(reply.full(text, last.finish_reason))

    async def _stream(self, request: Request, seq, queue: asyncio.Queue, reply):
        """SSE: one chunk per generated token, then usage (if asked) and ``[DONE]``."""
        started, code = time.perf_counter(), 200
        try:
            if reply.chat:
                yield _sse(reply.chunk({"role": "assistant", "content": ""}, None))
            while True:
                event = await queue.get()
                if event.finish_reason == "error":
                    code = 500
                    yield _sse(
                        protocol.error_body(event.error or "generation failed", "server_error")
                    )
                    break
                yield _sse(reply.delta(event.text, event.finish_reason))
                if event.finish_reason is not None:
                    break
            if reply.req.include_usage:
                yield _sse(reply.usage_chunk())
            yield b"data: [DONE]\n\n"
        except BaseException:
            code = 499  # the client went away (cancelled) mid-stream
            raise
        finally:
            self.engine.cancel(seq)  # no-op when finished; otherwise frees it at the next step
            self.metrics.observe_request(code, time.perf_counter() - started)

    # -- other routes ----------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        problem = self._unauthorized(request)
        if problem is not None:
            return problem
        card = {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "inferops",
            "max_model_len": self.model.spec.context if self.model else None,
        }
        name = request.path_params.get("name")
        if name is not None:
            if name != self.name:
                return _error(
                    404, f"the model {name!r:.100} does not exist", "model", "model_not_found"
                )
            return _json(card)
        return _json({"object": "list", "data": [card]})


async def _disconnected(request: Request) -> None:
    # After the body is read, the next ASGI message is http.disconnect (or never).
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class _Reply:
    """OpenAI response and chunk shapes for one request."""

    def __init__(self, rid: str, model: str, req: protocol.GenerationRequest, seq: Sequence):
        self.id, self.model, self.req, self.seq = rid, model, req, seq
        self.chat = req.kind == "chat"
        self.created = int(time.time())

    def usage(self) -> dict:
        prompt, completion = len(self.seq.prompt), len(self.seq.output_ids)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _envelope(self, obj: str, choices: list, usage=None) -> dict:
        doc = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None or (self.req.stream and self.req.include_usage):
            doc["usage"] = usage
        return doc

    def chunk(self, delta: dict, finish_reason) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope("chat.completion.chunk", [choice])

    def delta(self, text: str, finish_reason) -> dict:
        if self.chat:
            return self.chunk(
                {"content": text} if text or finish_reason is None else {}, finish_reason
            )
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope("text_completion", [choice])

    def usage_chunk(self) -> dict:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return self._envelope(obj, [], self.usage())

    def full(self, text: str, finish_reason: str) -> dict:
        if self.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            return self._envelope("chat.completion", [choice], self.usage())
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope("text_completion", [choice], self.usage())
