"""HTTP routes of the reference server: KServe v2 / Open Inference Protocol plus /predict.

Error contract: malformed input -> 400 naming the problem, missing/bad token
-> 401, unknown model or route -> 404, body over the limit -> 413, queue full,
request-body budget spent or model not ready -> 503 with ``Retry-After``.
Bad input never yields a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from inferops import __version__
from inferops.exitcodes import UsageError
from inferops.server import codec, limits, openapi
from inferops.server.batcher import Batcher, NotRunning, QueueFull
from inferops.server.health import RETRY_AFTER_S, HealthRoutes
from inferops.server.metrics import ServerMetrics
from inferops.server.stats import BatchTiming, ModelStatistics

MODEL_VERSION = "1"
SMALL_BODY_BYTES = 64 * 1024  # bodies of the non-inference POST routes
#: Protocol extensions, named as Triton names them in its server metadata.
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository"]


@dataclass
class ServerConfig:
    """Everything ``inferops serve`` needs once its flags are checked."""

    model_path: Path
    name: str
    backend: str = "onnxruntime"
    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    max_queue_size: int = 256
    preferred_batch_sizes: tuple[int, ...] = ()
    max_body_bytes: int | None = None  # None: derived from the model (limits.default_body_limit)
    max_inflight_bytes: int | None = None  # None: limits.default_inflight_limit(max_body_bytes)
    token: str | None = None
    threads: int | None = None
    allow_fault_injection: bool = False  # honour the model's inferops.fault.* (server/faults.py)
    allow_spinning: bool = False  # ONNX Runtime's idle intra-op threads spin (backends.py)


class _TooLarge(Exception):
    pass


class _Busy(Exception):
    """The shared request-body budget cannot take this body now (HTTP 503)."""


def _json(doc, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY),
        status,
        headers=headers,
        media_type="application/json",
    )


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"error": message}, status, headers)


def _unavailable(message: str) -> Response:
    return _error(503, message, {"Retry-After": RETRY_AFTER_S})


class InferenceServer(HealthRoutes):
    """Owns the model, the batcher and the metrics; ``app`` is its ASGI application.

    ``load()`` (run off the event loop) loads and warms the model; readiness
    turns true only after it succeeds.
    """

    def __init__(self, config: ServerConfig):
        self.config = config
        self.name = config.name
        self.metrics = ServerMetrics(config.name)
        self.stats = ModelStatistics(config.name, MODEL_VERSION)
        self.backend = None
        self.batcher: Batcher | None = None
        self.fault = None  # a test fault the model declares (faults.py), when allowed
        self.ready = threading.Event()
        self.inputs: dict = {}
        self.outputs: dict = {}
        self.max_body_bytes = config.max_body_bytes or limits.FALLBACK_BODY_BYTES
        self.budget = limits.BodyBudget(config.max_inflight_bytes or 0)
        expected = f"Bearer {config.token}" if config.token else None
        self._expected_auth = expected.encode() if expected else None
        self.app = Starlette(
            routes=self._routes(),
            exception_handlers={404: self._not_found, 405: self._not_allowed},
            lifespan=self._lifespan,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model, warm it up, start the batcher; raises UsageError on a bad model."""
        from inferops.server import backends, faults

        backend = backends.load(
            self.config.model_path,
            self.config.backend,
            self.config.threads,
            spinning=self.config.allow_spinning,
        )
        self.fault = faults.from_metadata(
            faults.model_metadata(backend, self.config.model_path),
            self.config.allow_fault_injection,
        )
        self.inputs = {s.name: s for s in backend.inputs}
        self.outputs = {s.name: s for s in backend.outputs}
        batched = all(s.batched for s in backend.inputs)
        self.max_body_bytes = self.config.max_body_bytes or limits.default_body_limit(
            backend.inputs, self.config.max_batch_size
        )
        self.budget.limit = self.config.max_inflight_bytes or limits.default_inflight_limit(
            self.max_body_bytes
        )
        if self.budget.limit < self.max_body_bytes:
            raise UsageError(
                f"--max-inflight-bytes {self.budget.limit} is below the body limit "
                f"{self.max_body_bytes}: a largest request could never be read"
            )
        self.metrics.body_bytes.labels(self.name).set_function(lambda: self.budget.held)
        self.backend = backend
        self._warm_up(batched)
        self.batcher = Batcher(
            backend.run,
            max_batch_size=self.config.max_batch_size,
            max_queue_delay=self.config.max_queue_delay_ms / 1000.0,
            max_queue_size=self.config.max_queue_size,
            batched=batched,
            observe=self._observe_batch,
            preferred_batch_sizes=self.config.preferred_batch_sizes,
        )
        self.metrics.queue_depth.labels(self.name).set_function(lambda: len(self.batcher))
        self.metrics.model_loaded.labels(self.name).set(1)
        self.ready.set()

    def _observe_batch(self, timing: BatchTiming) -> None:
        self.metrics.observe_batch(timing)
        self.stats.observe_batch(timing)

    def _warm_up(self, batched: bool) -> None:
        # First runs allocate arenas and pick kernels; do that before saying "ready".
        sizes = [1, self.config.max_batch_size] if batched else [1]
        for rows in dict.fromkeys(sizes):
            feeds = {}
            for spec in self.inputs.values():
                shape = [d if d != -1 else 1 for d in spec.shape]
                if spec.batched:
                    shape[0] = rows
                feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
            try:
                self.backend.run(feeds)
            except Exception as exc:  # a model with unusual dims still serves; say why
                print(f"inferops serve: warm-up with zeros skipped ({exc})", file=sys.stderr)
                return

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        yield
        await self._shutdown()

    async def _shutdown(self) -> None:
        # Runs after uvicorn has drained the open connections: finish the queue, then stop.
        self.ready.clear()
        if self.batcher is not None:
            await asyncio.to_thread(self.batcher.stop)

    # -- routing ---------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        m = self._measured
        return [
            Route("/v2", self.server_metadata),
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.v2_ready),
            Route("/v2/models/stats", self.statistics),  # before {name}: not a model called "stats"
            Route("/v2/models/{name}", self.model_metadata),
            Route("/v2/models/{name}/versions/{version}", self.model_metadata),
            Route("/v2/models/{name}/config", self.model_config),
            Route("/v2/models/{name}/versions/{version}/config", self.model_config),
            Route("/v2/models/{name}/stats", self.statistics),
            Route("/v2/models/{name}/versions/{version}/stats", self.statistics),
            Route("/v2/repository/index", self.repository_index, methods=["POST"]),
            Route("/v2/repository/models/{name}/load", self.repository_load, methods=["POST"]),
            Route("/v2/repository/models/{name}/unload", self.repository_unload, methods=["POST"]),
            Route("/v2/models/{name}/ready", self.model_ready),
            Route("/v2/models/{name}/versions/{version}/ready", self.model_ready),
            Route("/v2/models/{name}/infer", m(self.infer), methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}/infer", m(self.infer), methods=["POST"]),
            Route("/predict", m(self.predict), methods=["POST"]),
            Route("/health", self.live),
            Route("/live", self.live),
            Route("/ready", self.simple_ready),
            Route("/metrics", self.prometheus),
            Route("/openapi.json", self.openapi_document),
        ]

    def _measured(self, handler: Callable[[Request], Awaitable[Response]]):
        """Wrap an inference route with the in-flight gauge and the per-code counters."""

        async def wrapper(request: Request) -> Response:
            started = time.perf_counter()
            in_flight = self.metrics.in_flight.labels(self.name)
            in_flight.inc()
            hold = request.state.hold = limits.Hold(self.budget)
            try:
                response = await handler(request)
            except ClientDisconnect:  # nobody is left to read the answer
                response = _error(400, "client disconnected before sending the whole body")
            finally:
                hold.release()  # the body, its arrays and its outputs are done with
                in_flight.dec()
            name = request.path_params.get("name", self.name)
            label = name if name == self.name else "_unknown"  # bounded label set
            seconds = time.perf_counter() - started
            self.metrics.observe_request(label, response.status_code, seconds)
            if label == self.name and response.status_code not in (401, 404):
                self.stats.observe_request(
                    response.status_code == 200,
                    getattr(request.state, "rows", 0),
                    seconds,
                    getattr(request.state, "encode_s", 0.0),
                )
            return response

        return wrapper

    async def _not_found(self, request: Request, exc) -> Response:
        return _error(404, f"no route {request.url.path!r:.100}")

    async def _not_allowed(self, request: Request, exc) -> Response:
        return _error(405, f"method {request.method} not allowed on {request.url.path!r:.100}")

    # -- checks shared by model routes ----------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if self._expected_auth is None:
            return True
        given = request.headers.get("authorization", "").encode("latin-1")
        return hmac.compare_digest(given, self._expected_auth)

    def _model_problem(self, request: Request, auth: bool = True) -> Response | None:
        if auth and not self._authorized(request):
            return _error(
                401,
                "missing or wrong bearer token",
                {"WWW-Authenticate": 'Bearer realm="inferops"'},
            )
        name = request.path_params.get("name", self.name)
        version = request.path_params.get("version", MODEL_VERSION)
        if name != self.name or version != MODEL_VERSION:
            return _error(
                404,
                f"unknown model {name!r:.100} version {version!r:.20}; "
                f"this server serves {self.name!r} version {MODEL_VERSION}",
            )
        return None

    async def _body(self, request: Request) -> bytes | bytearray:
        """Read the body within the per-request limit and the shared in-flight budget.

        A declared ``Content-Length`` is checked and reserved before one byte is
        read, and read into one buffer of that size; a chunked body reserves as
        it arrives. The reservation is returned when the response is ready.
        """
        limit, hold = self.max_body_bytes, request.state.hold
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():  # the HTTP parser enforces it
            size = int(declared)
            if size > limit:
                raise _TooLarge
            if not hold.take(size):
                raise _Busy
            buffer, filled = bytearray(size), 0
            view = memoryview(buffer)
            async for chunk in request.stream():
                if filled + len(chunk) > size:
                    raise _TooLarge
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
            view.release()
            return buffer if filled == size else buffer[:filled]
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            if not hold.take(len(chunk)):
                raise _Busy
            chunks.append(chunk)
        return b"".join(chunks)

    async def _run(self, request: Request, parse) -> tuple[Response | None, object, object]:
        """Common path of both inference routes: admission, body, parse, queue, wait."""
        problem = self._model_problem(request)
        if problem is not None:
            return problem, None, None
        if not self.ready.is_set():
            return _unavailable("model is not ready"), None, None
        if self.batcher.full():  # shed load before reading the body
            return _unavailable("server overloaded: queue is full"), None, None
        try:
            body = await self._body(request)
        except _TooLarge:
            return (
                _error(
                    413,
                    f"request body is over the {self.max_body_bytes} byte limit (--max-body-bytes)",
                ),
                None,
                None,
            )
        except _Busy:
            return (
                _unavailable(
                    f"server busy: request bodies in flight would pass {self.budget.limit} "
                    "bytes (--max-inflight-bytes)"
                ),
                None,
                None,
            )
        try:
            parsed = parse(body, request)
        except codec.BadRequest as exc:
            return _error(400, str(exc)), None, None
        feeds = parsed.inputs if isinstance(parsed, codec.InferRequest) else parsed
        request.state.rows = self._rows(feeds)
        try:
            future = self.batcher.submit(feeds)
        except QueueFull as exc:
            return _unavailable(f"server overloaded: {exc}"), None, None
        except NotRunning as exc:
            return _unavailable(str(exc)), None, None
        try:
            results = await future
        except Exception as exc:
            if type(exc).__name__ == "InvalidArgument":  # ONNX Runtime refused these inputs
                return _error(400, f"the model refused the input: {exc}"), None, None
            # the engine itself failed on input that passed every check: a server fault
            return _error(500, f"inference failed: {exc}"), None, None
        if self.fault is not None:
            await self.fault.on_request()
        return None, parsed, results

    # -- routes ----------------------------------------------------------------------------

    async def infer(self, request: Request) -> Response:
        """POST /v2/models/{name}/infer: v2 JSON or binary tensors in, same out."""

        def parse(body, req):
            return codec.parse_v2(
                body, req.headers.get(codec.HEADER_LENGTH), self.inputs, self.outputs
            )

        error, parsed, results = await self._run(request, parse)
        if error is not None:
            return error
        started = time.perf_counter()
        body, headers = codec.encode_v2(self.name, MODEL_VERSION, parsed, results)
        request.state.encode_s = time.perf_counter() - started
        return Response(body, 200, headers=headers)

    async def predict(self, request: Request) -> Response:
        """POST /predict: ``{"inputs": [...]}`` -> ``{"model": name, "outputs": [...]}``."""
        error, _, results = await self._run(
            request, lambda body, req: codec.parse_predict(body, self.inputs)
        )
        if error is not None:
            return error
        started = time.perf_counter()
        outputs = next(iter(results.values())) if len(results) == 1 else results
        response = _json({"model": self.name, "outputs": outputs})
        request.state.encode_s = time.perf_counter() - started
        return response

    def _rows(self, feeds: dict) -> int:
        """Inferences in one request, as Triton counts them: its batch rows (1 if unbatched)."""
        if not self.batcher.batched:
            return 1
        first = next(iter(feeds.values()))
        return int(first.shape[0]) if first.ndim else 1

    async def server_metadata(self, request: Request) -> Response:
        return _json({"name": "inferops", "version": __version__, "extensions": EXTENSIONS})

    async def model_ready(self, request: Request) -> Response:
        problem = self._model_problem(request, auth=False)
        if problem is not None:
            return problem
        ready = self.ready.is_set()
        return _json({"name": self.name, "ready": ready}, 200 if ready else 400)

    async def model_metadata(self, request: Request) -> Response:
        problem = self._model_problem(request)
        if problem is not None:
            return problem
        if not self.ready.is_set():
            return _unavailable("model is not ready")
        return _json(
            {
                "name": self.name,
                "versions": [MODEL_VERSION],
                "platform": self.backend.platform,
                "inputs": [s.metadata() for s in self.inputs.values()],
                "outputs": [s.metadata() for s in self.outputs.values()],
            }
        )

    # -- Triton's extensions ---------------------------------------------------------------

    async def model_config(self, request: Request) -> Response:
        """GET /v2/models/{name}[/versions/{v}]/config: Triton's model configuration."""
        problem = self._model_problem(request)
        if problem is not None:
            return problem
        if not self.ready.is_set():
            return _unavailable("model is not ready")
        return _json(self._config())

    def _config(self) -> dict:
        batched = self.batcher.batched
        max_batch = self.batcher.max_batch_size if batched else 0

        def tensor(spec, extra: dict) -> dict:
            dims = list(spec.shape[1:] if batched else spec.shape)
            return {"name": spec.name, "data_type": f"TYPE_{spec.datatype}", "dims": dims, **extra}

        gpu = "CUDA" in getattr(self.backend, "device", "") or "Tensorrt" in getattr(
            self.backend, "device", ""
        )
        config = {
            "name": self.name,
            "platform": self.backend.platform,
            "backend": self.config.backend,
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": max_batch,
            "input": [
                tensor(
                    s,
                    {
                        "format": "FORMAT_NONE",
                        "is_shape_tensor": False,
                        "allow_ragged_batch": False,
                        "optional": False,
                    },
                )
                for s in self.inputs.values()
            ],
            "output": [
                tensor(s, {"label_filename": "", "is_shape_tensor": False})
                for s in self.outputs.values()
            ],
            "instance_group": [
                {
                    "name": f"{self.name}_0",
                    "kind": "KIND_GPU" if gpu else "KIND_CPU",
                    "count": 1,
                    "gpus": [0] if gpu else [],
                }
            ],
            "default_model_filename": self.config.model_path.name,
            "parameters": {
                "max_body_bytes": {"string_value": str(self.max_body_bytes)},
                "max_inflight_bytes": {"string_value": str(self.budget.limit)},
            },
        }
        if max_batch > 1:
            config["dynamic_batching"] = {
                "preferred_batch_size": list(self.batcher.preferred_batch_sizes),
                "max_queue_delay_microseconds": round(self.config.max_queue_delay_ms * 1000),
                "preserve_ordering": False,
                "priority_levels": 0,
                "default_priority_level": 0,
                "default_queue_policy": {
                    "timeout_action": "REJECT",
                    "default_timeout_microseconds": 0,
                    "allow_timeout_override": False,
                    "max_queue_size": self.config.max_queue_size,
                },
            }
        return config

    async def statistics(self, request: Request) -> Response:
        """GET /v2/models[/{name}[/versions/{v}]]/stats: Triton's statistics extension."""
        if "name" in request.path_params:
            problem = self._model_problem(request)
            if problem is not None:
                return problem
        elif not self._authorized(request):
            return self._model_problem(request)
        return _json({"model_stats": [self.stats.to_json()]})

    async def repository_index(self, request: Request) -> Response:
        """POST /v2/repository/index: the one model this server serves, and its state."""
        if not self._authorized(request):
            return self._model_problem(request)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > SMALL_BODY_BYTES:
                return _error(413, f"an index request is at most {SMALL_BODY_BYTES} bytes")
        ready_only = False
        if body.strip():
            try:
                doc = codec.load_json(body)
            except codec.BadRequest as exc:
                return _error(400, str(exc))
            if not isinstance(doc, dict) or not isinstance(doc.get("ready", False), bool):
                return _error(400, "the index request must be an object; 'ready' true or false")
            ready_only = doc.get("ready", False)
        ready = self.ready.is_set()
        entry = {
            "name": self.name,
            "version": MODEL_VERSION,
            "state": "READY" if ready else "LOADING",
            "reason": "" if ready else "loading and warming up",
        }
        return _json([] if ready_only and not ready else [entry])

    async def repository_load(self, request: Request) -> Response:
        """POST /v2/repository/models/{name}/load: the served model is loaded at start-up."""
        problem = self._model_problem(request)
        if problem is not None:
            return problem
        if not self.ready.is_set():
            return _unavailable("model is not ready")
        return _json({})

    async def repository_unload(self, request: Request) -> Response:
        problem = self._model_problem(request)
        if problem is not None:
            return problem
        return _error(
            400, "inferops serve serves one model for its whole life; stop the server instead"
        )

    async def openapi_document(self, request: Request) -> Response:
        """GET /openapi.json: this server's routes, with request schemas for its model."""
        if not self._authorized(request):
            return self._model_problem(request)
        return _json(openapi.document(self, MODEL_VERSION))
