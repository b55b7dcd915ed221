"""Test-only fault injection (server/faults.py): a model version that degrades after N
requests, honoured only by a server started with --allow-fault-injection."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import onnx
import pytest

from inferops.exitcodes import UsageError
from inferops.server import faults
from inferops.server.process import ServerProcess

DELAY_MS = 1500  # far above an mlp request's latency, so "late" and "on time" cannot mix
BODY = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}


def _faulty(model_dir, tmp_path, after: str, delay: str):
    model = onnx.load(str(model_dir / "mlp.onnx"))
    onnx.helper.set_model_props(model, {faults.AFTER_KEY: after, faults.DELAY_KEY: delay})
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    return path


def _latencies(server: ServerProcess, count: int) -> list[float]:
    out = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(count):
            start = time.perf_counter()
            assert client.post("/v2/models/mlp/infer", json=BODY).status_code == 200
            out.append(time.perf_counter() - start)
    return out


def test_the_declared_fault_starts_after_n_requests_when_allowed(model_dir, cache_env, tmp_path):
    path = _faulty(model_dir, tmp_path, "3", str(DELAY_MS))
    with ServerProcess(path, env=cache_env, extra_args=["--allow-fault-injection"]) as server:
        latencies = _latencies(server, 5)
        with httpx.Client(base_url=server.url) as client:  # health routes are not counted
            assert client.get("/v2/health/ready").status_code == 200
    on_time, late = latencies[:3], latencies[3:]
    assert all(s < DELAY_MS / 1000 for s in on_time), latencies
    assert all(s >= DELAY_MS / 1000 for s in late), latencies
    assert "FAULT INJECTION ON" in server.stderr_tail()


def test_the_environment_switch_allows_it_too(model_dir, cache_env, tmp_path):
    path = _faulty(model_dir, tmp_path, "0", str(DELAY_MS))
    env = {**cache_env, faults.ENV_SWITCH: "1"}
    with ServerProcess(path, env=env) as server:
        assert _latencies(server, 1)[0] >= DELAY_MS / 1000


def test_a_server_not_started_for_it_ignores_the_metadata_and_says_so(
    model_dir, cache_env, tmp_path
):
    path = _faulty(model_dir, tmp_path, "0", str(DELAY_MS))
    env = {k: v for k, v in cache_env.items() if k != faults.ENV_SWITCH}
    with ServerProcess(path, env=env) as server:
        latencies = _latencies(server, 3)
    assert all(s < DELAY_MS / 1000 for s in latencies), latencies
    assert "ignored: this server was not started with --allow-fault-injection" in (
        server.stderr_tail()
    )


def test_a_malformed_declaration_is_exit_2_with_one_line(model_dir, cache_env, tmp_path):
    path = _faulty(model_dir, tmp_path, "soon", "800")
    proc = subprocess.run(
        [sys.executable, "-m", "inferops", "serve", "--model", str(path), "--port", "0",
         "--allow-fault-injection"],
        env=cache_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert faults.AFTER_KEY in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "metadata",
    [
        {faults.AFTER_KEY: "10"},  # no delay
        {faults.AFTER_KEY: "-1", faults.DELAY_KEY: "5"},
        {faults.AFTER_KEY: "10", faults.DELAY_KEY: "0"},
        {faults.AFTER_KEY: "10", faults.DELAY_KEY: "61000"},
    ],
)
def test_declarations_out_of_range_are_refused(metadata):
    with pytest.raises(UsageError):
        faults.from_metadata(metadata, allowed=True, log=lambda line: None)


def test_a_model_without_a_declaration_has_no_fault():
    assert faults.from_metadata({"other": "x"}, allowed=True) is None
