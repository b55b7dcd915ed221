"""``inferops serve``: the reference inference server (KServe v2 REST + /predict).

    inferops serve --model cnn                       embedded model, built into the cache
    inferops serve --model my.onnx --port 9000       any ONNX file
    inferops serve --model dense --max-batch-size 1  the naive per-request server

See docs/server.md for routes, metrics, batching and security.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import signal
import sys
import threading
from pathlib import Path

from inferops import validators
from inferops.exitcodes import UsageError
from inferops.server import faults

TOKEN_ENV = "INFEROPS_TOKEN"
SPINNING_ENV = "INFEROPS_ALLOW_SPINNING"
#: one batching delay bound, shared with the deploy's validation
MAX_QUEUE_DELAY_MS = 60_000
parse_bytes = validators.size_bytes  # the --max-body-bytes form ("64M"), for other callers
queue_delay_ms = validators.number_range(0, MAX_QUEUE_DELAY_MS, unit="ms")


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(validators.positive_int(part) for part in text.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from inferops.server.backends import BACKENDS

    parser.add_argument(
        "--model",
        required=True,
        help="an .onnx file, or an embedded model name (mlp, cnn, dense, tinylm)",
    )
    parser.add_argument("--name", help="model name in URLs and metrics (default: file stem)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=validators.port, default=8000, help="port (default 8000; 0 = any)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="onnxruntime",
        help="inference engine (default onnxruntime)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=validators.positive_int,
        default=32,
        help="rows per model run after dynamic batching; 1 = no batching (default 32)",
    )
    parser.add_argument(
        "--max-queue-delay-ms",
        type=queue_delay_ms,
        default=2.0,
        help="longest a request waits for others to batch with (default 2)",
    )
    parser.add_argument(
        "--preferred-batch-sizes",
        type=_sizes,
        default=(),
        help="comma-separated batch sizes to dispatch as soon as the queue fills one "
        "(Triton's preferred_batch_size; default: none, batches grow to --max-batch-size)",
    )
    parser.add_argument(
        "--max-queue-size",
        type=validators.positive_int,
        default=256,
        help="requests allowed to wait; more get 503 (default 256)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=parse_bytes,
        default=None,
        help="largest request body; more gets 413 (default: max-batch-size rows "
        "of the model's inputs as JSON, at least 1M; 64M if that cannot be derived)",
    )
    parser.add_argument(
        "--max-inflight-bytes",
        type=parse_bytes,
        default=None,
        help="request-body bytes held at once, all requests together; more gets 503 "
        "(default: 8 x --max-body-bytes, at least 64M)",
    )
    parser.add_argument(
        "--threads",
        type=validators.positive_int,
        default=None,
        help="engine threads (default: one per CPU this process may use)",
    )
    parser.add_argument(
        "--allow-spinning",
        action="store_true",
        default=validators.env_switch(SPINNING_ENV),
        help="let ONNX Runtime's idle engine threads spin-wait for the next batch: lower "
        "latency on cores nothing else needs, but they burn the CPU the HTTP side (and a CPU "
        f"quota) needs (default off; or set {SPINNING_ENV}=1)",
    )
    parser.add_argument(
        "--token",
        help=f"require 'Authorization: Bearer TOKEN' on model routes (or set ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--token-file", type=Path, help="read the token from this file (for systemd credentials)"
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow binding a non-loopback address without a token",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--allow-fault-injection",
        action="store_true",
        default=faults.allowed_by_env(),
        help="honour a test fault declared in the model's metadata (inferops.fault.*, for "
        f"rollout tests; never in production; or set {faults.ENV_SWITCH}=1)",
    )
    llm = parser.add_argument_group("decoder models (tinylm; see docs/llm.md)")
    llm.add_argument(
        "--max-num-seqs",
        type=validators.positive_int,
        default=32,
        help="sequences in the running batch; 1 = one request at a time (default 32)",
    )
    llm.add_argument(
        "--max-num-batched-tokens",
        type=validators.positive_int,
        default=2048,
        help="tokens per engine step, prefill and decode together (default 2048)",
    )
    llm.add_argument(
        "--kv-cache-bytes",
        type=parse_bytes,
        default=512 * 1024**2,
        help="KV-cache budget; when full, requests wait (default 512M)",
    )


def resolve_token(
    token: str | None, token_file: Path | None, env: dict | None = None
) -> str | None:
    """The token from --token, else --token-file, else $INFEROPS_TOKEN; None if none is set."""
    env = os.environ if env is None else env
    if token is not None and token_file is not None:
        raise UsageError("give --token or --token-file, not both")
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {token_file}: {exc.strerror or exc}") from None
        if not token:
            raise UsageError(f"--token-file {token_file}: file is empty")
    if token is None:
        token = env.get(TOKEN_ENV) or None
    if token is not None and (not token.strip() or not token.isprintable()):
        raise UsageError("the token must be non-empty printable text")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname may resolve anywhere: treat it as exposed


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse a non-loopback address without a token, unless the user said --insecure."""
    if token is None and not is_loopback(host) and not insecure:
        raise UsageError(
            f"refusing to listen on {host} without a token: set --token, "
            f"--token-file or ${TOKEN_ENV}, or pass --insecure"
        )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from inferops.models import EMBEDDED, resolve
    from inferops.server.app import InferenceServer, ServerConfig

    token = resolve_token(args.token, args.token_file)
    check_exposure(args.host, token, args.insecure)
    path = resolve(args.model)
    name = args.name or (
        args.model if args.model in EMBEDDED and not Path(args.model).is_file() else path.stem
    )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"--name {name!r}: use letters, digits, '_', '.', '-'")
    too_big = [p for p in args.preferred_batch_sizes if p > args.max_batch_size]
    if too_big:
        raise UsageError(f"--preferred-batch-sizes {too_big} is over --max-batch-size")
    config = ServerConfig(
        model_path=path,
        name=name,
        backend=args.backend,
        max_batch_size=args.max_batch_size,
        max_queue_delay_ms=args.max_queue_delay_ms,
        max_queue_size=args.max_queue_size,
        preferred_batch_sizes=args.preferred_batch_sizes,
        max_body_bytes=args.max_body_bytes,
        max_inflight_bytes=args.max_inflight_bytes,
        token=token,
        threads=args.threads,
        allow_fault_injection=args.allow_fault_injection,
        allow_spinning=args.allow_spinning,
    )
    from inferops.server.llm import is_decoder

    if is_decoder(path):  # OpenAI routes and continuous batching (inferops/server/llm)
        from inferops.server.llm.app import LLMServer

        server = LLMServer(
            config, args.max_num_seqs, args.max_num_batched_tokens, args.kv_cache_bytes
        )
    else:
        server = InferenceServer(config)
    switch_ms = os.environ.get("INFEROPS_SWITCH_INTERVAL_MS")  # see docs/server.md
    if switch_ms:
        try:
            sys.setswitchinterval(float(switch_ms) / 1000)
        except ValueError:
            raise UsageError(
                f"INFEROPS_SWITCH_INTERVAL_MS={switch_ms!r}: not milliseconds > 0"
            ) from None
    uv = _draining_server(
        uvicorn.Config(
            server.app,
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=args.access_log,
            lifespan="on",
            timeout_graceful_shutdown=60,
            server_header=False,
        )
    )
    failure: list[BaseException] = []

    def load() -> None:
        try:
            server.load()
        except BaseException as exc:  # reported by the main thread after uvicorn stops
            failure.append(exc)
            uv.should_exit = True
            return
        while not uv.started and not uv.should_exit:
            threading.Event().wait(0.01)
        if uv.started:
            port = uv.servers[0].sockets[0].getsockname()[1]
            host = f"[{args.host}]" if ":" in args.host else args.host
            print(
                f"inferops serve: ready on http://{host}:{port} (model {name}, backend "
                f"{args.backend}, max batch {server.batcher.max_batch_size})",
                flush=True,
            )

    threading.Thread(target=load, name="inferops-load", daemon=True).start()
    try:
        uv.run()
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind
        if exc.code:
            raise UsageError(
                f"cannot listen on {args.host}:{args.port} (see the error above)"
            ) from None
        raise
    if failure:
        if isinstance(failure[0], UsageError):
            raise failure[0]
        raise UsageError(f"model {path}: failed to load ({failure[0]})")
    if not uv.started:
        raise UsageError(f"cannot listen on {args.host}:{args.port}")
    print("inferops serve: stopped", flush=True)
    return 0


def _draining_server(config):
    """A uvicorn.Server that drains on SIGTERM/SIGINT and then returns, so the exit code is 0.

    Stock uvicorn re-raises the signal after its graceful shutdown, which makes
    the process die "killed by SIGTERM" even though nothing was lost.
    """
    import uvicorn

    class DrainingServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {
                s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return DrainingServer(config)
