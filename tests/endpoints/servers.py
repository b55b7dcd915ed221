"""Start (and always stop) the servers the protocol tests drive, each a real process.

* :class:`SeedsAPI` — the seeds' FastAPI service (``tests.endpoints.seeds_api``);
* :class:`SSELawServer` — the OpenAI streaming law server (a named fake);
* :class:`MLServer` — Seldon's MLServer serving a scikit-learn model (KServe v2);
* :class:`TorchServe` — PyTorch's TorchServe (Java frontend + Python worker);
* :class:`KServeV1` — KServe's Python model server, v1 protocol (TF Serving's REST API).

The last three are not written here and live in their own venvs under
``.venv-servers/`` (``scripts/install-test-servers``). :func:`server_venv`
installs a missing one on first use; if that fails, the test fails (a missing
dependency never turns into a silent skip).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tests.load.procs import PY, ROOT, kill_group

HERE = Path(__file__).resolve().parent
VENVS = ROOT / ".venv-servers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_venv(name: str) -> Path:
    """``.venv-servers/NAME``, installed by ``scripts/install-test-servers`` if missing."""
    venv = VENVS / name
    if not (venv / ".installed").is_file():
        subprocess.run(
            [str(ROOT / "scripts" / "install-test-servers"), name],
            cwd=ROOT,
            check=True,
            timeout=900,
        )
    return venv


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: dict, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class _Proc:
    """A server in its own process group; ``url`` once it answers."""

    name = "server"
    url: str
    log: Path | None = None

    def _spawn(self, cmd, *, cwd=ROOT, env=None, port_line: bool = False, log: Path | None = None):
        self.log = log
        out = subprocess.PIPE if port_line else (open(log, "wb") if log else subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if log or port_line else subprocess.DEVNULL,
            text=port_line,
            start_new_session=True,
        )
        if port_line:
            line = self.proc.stdout.readline()
            if not line.startswith("PORT "):
                self.stop()
                raise RuntimeError(f"{self.name} did not start: {line!r}")
            self.port = int(line.split()[1])
            self.url = f"http://127.0.0.1:{self.port}"

    def _wait(self, ready, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        tail = self.log.read_text(errors="replace")[-3000:] if self.log else ""
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout:g}s\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group: children (a JVM, workers) outlive their leader."""
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        kill_group(self.proc, timeout=timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class SeedsAPI(_Proc):
    name = "seeds API"

    def __init__(self, delay_ms: float = 0.0):
        self._spawn([PY, "-m", "tests.endpoints.seeds_api", "--delay-ms", delay_ms], port_line=True)
        self._wait(lambda: _get(self.url + "/ready")[0] == 200, 30)


class SSELawServer(_Proc):
    name = "SSE law server"

    def __init__(self, *args: str, cpus: str | None = None):
        cmd = [PY, "-m", "tests.endpoints.sse_lawserver", *args]
        if cpus:
            cmd = ["taskset", "-c", cpus, *cmd]
        self._spawn(cmd, port_line=True)


class MLServer(_Proc):
    """``mlserver start`` on a fresh model repository holding model ``iris``."""

    name = "MLServer"
    model = "iris"

    def __init__(self, workdir: Path, timeout: float = 120):
        venv = server_venv("mlserver")
        repo = workdir / "mlserver-repo"
        self.port, grpc = free_port(), free_port()
        subprocess.run(
            [venv / "bin" / "python", HERE / "mlserver_repo.py", repo, str(self.port), str(grpc)],
            check=True,
            timeout=120,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn(
            [venv / "bin" / "mlserver", "start", repo], cwd=repo, log=workdir / "mlserver.log"
        )
        self._wait(lambda: _get(f"{self.url}/v2/models/{self.model}/ready")[0] == 200, timeout)


class TorchServe(_Proc):
    """TorchServe with model ``echo`` (``torchserve_echo/handler.py`` in a .mar)."""

    name = "TorchServe"
    model = "echo"

    def __init__(self, workdir: Path, timeout: float = 180):
        if shutil.which("java") is None:
            raise RuntimeError("TorchServe needs a JRE: run scripts/install-system-deps")
        venv = server_venv("torchserve")
        store = workdir / "torchserve-store"
        store.mkdir(parents=True, exist_ok=True)
        manifest = {
            "runtime": "python",
            "model": {"modelName": self.model, "handler": "handler.py", "modelVersion": "1.0"},
            "archiverVersion": "0.12.0",
        }
        # a .mar is what torch-model-archiver writes: a zip with MAR-INF/MANIFEST.json
        with zipfile.ZipFile(store / f"{self.model}.mar", "w") as mar:
            mar.write(HERE / "torchserve_echo" / "handler.py", "handler.py")
            mar.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "config.properties"
        config.write_text(
            f"inference_address={self.url}\n"
            f"management_address=http://127.0.0.1:{free_port()}\n"
            f"metrics_address=http://127.0.0.1:{free_port()}\n"
            "default_workers_per_model=1\n"
            "disable_token_authorization=true\n"
            "install_py_dep_per_model=false\n"
        )
        env = dict(os.environ)
        env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(HERE / "torch_shim")  # see torch_shim/torch/__init__.py
        env["LOG_LOCATION"] = env["METRICS_LOCATION"] = str(workdir / "torchserve-logs")
        self._spawn(
            [
                *(venv / "bin" / "torchserve", "--start", "--foreground", "--ncs"),
                *("--model-store", store, "--models", f"{self.model}={self.model}.mar"),
                *("--ts-config", config, "--disable-token-auth"),
            ],
            cwd=workdir,
            env=env,
            log=workdir / "torchserve.log",
        )
        # /ping answers before the worker is up: wait for a real prediction
        self._wait(
            lambda: _post(f"{self.url}/predictions/{self.model}", {"x": [1]})[0] == 200, timeout
        )


class KServeV1(_Proc):
    """KServe's model server with model ``summer`` on the v1 (TF Serving) protocol."""

    name = "KServe"
    model = "summer"

    def __init__(self, workdir: Path, timeout: float = 120):
        venv = server_venv("kserve")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn(
            [
                *(venv / "bin" / "python", HERE / "kserve_v1_model.py"),
                *("--http_port", self.port, "--grpc_port", free_port()),
            ],
            cwd=workdir,
            log=workdir / "kserve.log",
        )
        self._wait(lambda: _get(f"{self.url}/v1/models/{self.model}")[0] == 200, timeout)
