"""Run ``inferops serve`` as a child process: for the demo, benchmarks and tests.

    with ServerProcess("mlp", max_batch_size=8) as server:
        httpx.post(server.url + "/predict", json={"inputs": [[0.0] * 64]})

The child gets its own process group (so ``stop`` reaches anything it spawns),
its output goes to temp files (a full pipe can never block it), and ``start``
waits for ``/v2/health/ready`` to answer 200.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m inferops serve ...`` in a new process group; a context manager.

    ``cpus`` pins the server with ``taskset -c``; ``token`` is passed through the
    environment (``INFEROPS_TOKEN``) so it never shows in ``ps``.
    """

    def __init__(
        self,
        model: str | Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        backend: str = "onnxruntime",
        max_batch_size: int | None = None,
        max_queue_delay_ms: float | None = None,
        token: str | None = None,
        extra_args: Sequence[str] = (),
        cpus: str | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.model = str(model)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_queue_delay_ms = max_queue_delay_ms
        self.token = token
        self.extra_args = list(extra_args)
        self.cpus = cpus
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen | None = None
        self._logdir = Path(tempfile.mkdtemp(prefix="inferops-serve-"))
        self.stdout_path = self._logdir / "stdout.log"
        self.stderr_path = self._logdir / "stderr.log"
        self._stdout: str | None = None
        self._stderr: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "inferops",
            "serve",
            "--model",
            self.model,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--backend",
            self.backend,
        ]
        if self.max_batch_size is not None:
            cmd += ["--max-batch-size", str(self.max_batch_size)]
        if self.max_queue_delay_ms is not None:
            cmd += ["--max-queue-delay-ms", str(self.max_queue_delay_ms)]
        cmd += self.extra_args
        if self.cpus is not None:
            cmd = ["taskset", "-c", self.cpus, *cmd]  # taskset execs: the pid stays the server's
        return cmd

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Launch and wait until ready; raise RuntimeError with the stderr tail if it dies."""
        if self.proc is not None and self.proc.poll() is None:
            # a second server would orphan the first (and, on the same port, the readiness
            # check would answer for the first one)
            raise RuntimeError(f"inferops serve already running (pid {self.proc.pid})")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._logdir.mkdir(exist_ok=True)
        self._stdout = self._stderr = None
        if self.token is not None:
            env["INFEROPS_TOKEN"] = self.token
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=err,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self._collect_logs()
                raise RuntimeError(
                    f"inferops serve exited with {code} before it was ready:\n{self.stderr_tail()}"
                )
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.stop(timeout=5)
                raise RuntimeError(
                    f"inferops serve not ready after {timeout:.0f}s:\n{self.stderr_tail()}"
                )
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the server's process group."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the server drains in-flight requests), then SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
        self._collect_logs()
        return self.proc.returncode

    def _collect_logs(self) -> None:
        # Keep the output in memory and remove the temp folder, so runs leave nothing behind.
        self._stdout, self._stderr = self._read(self.stdout_path), self._read(self.stderr_path)
        shutil.rmtree(self._logdir, ignore_errors=True)

    @staticmethod
    def _read(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def stdout_text(self) -> str:
        """Everything the server printed on stdout so far (also after ``stop``)."""
        return self._stdout if self._stdout is not None else self._read(self.stdout_path)

    def stderr_tail(self, lines: int = 30) -> str:
        text = self._stderr if self._stderr is not None else self._read(self.stderr_path)
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
