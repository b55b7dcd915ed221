"""Real server processes: batching over HTTP, overload shedding, SIGTERM drain, OpenVINO, startup."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from inferops.server import codec
from inferops.server.process import ServerProcess, free_port


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def _reference(model_dir, name):
    session = ort.InferenceSession(
        str(model_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"]
    )
    return lambda x: session.run(None, {"input": x})[0]


def _infer_model(url, model, x):
    body, headers = codec.encode_v2_request({"input": x})
    return httpx.post(f"{url}/v2/models/{model}/infer", content=body, headers=headers, timeout=60)


def _concurrently(fn, args_list):
    barrier = threading.Barrier(len(args_list))

    def call(args):
        barrier.wait()
        return fn(*args)

    with ThreadPoolExecutor(len(args_list)) as pool:
        return list(pool.map(call, args_list))


def test_concurrent_requests_are_merged_and_each_caller_gets_its_rows(model_dir, cache_env):
    reference = _reference(model_dir, "mlp")
    rows = [1, 2, 3, 1, 1, 2]
    xs = [
        np.random.RandomState(i).uniform(-1, 1, (n, 64)).astype(np.float32)
        for i, n in enumerate(rows)
    ]
    with ServerProcess(
        model_dir / "mlp.onnx", max_batch_size=16, max_queue_delay_ms=1000, env=cache_env
    ) as server:
        responses = _concurrently(_infer_model, [(server.url, "mlp", x) for x in xs])
        metrics = httpx.get(server.url + "/metrics").text
    for x, resp in zip(xs, responses, strict=True):
        assert resp.status_code == 200
        out = codec.decode_v2_response(resp.content, resp.headers[codec.HEADER_LENGTH])
        np.testing.assert_allclose(out["logits"], reference(x), atol=1e-5)  # its own rows
    assert _metric(metrics, "inferops_batch_size_sum") == sum(rows)
    assert _metric(metrics, "inferops_batch_size_count") <= 2  # 6 requests, merged
    assert _metric(metrics, "inferops_queue_wait_seconds_count") == len(rows)


def test_max_batch_size_one_is_the_per_request_server(model_dir, cache_env):
    xs = [np.zeros((1, 64), np.float32)] * 4
    with ServerProcess(
        model_dir / "mlp.onnx", max_batch_size=1, max_queue_delay_ms=400, env=cache_env
    ) as server:
        responses = _concurrently(_infer_model, [(server.url, "mlp", x) for x in xs])
        metrics = httpx.get(server.url + "/metrics").text
    assert [r.status_code for r in responses] == [200] * 4
    assert _metric(metrics, "inferops_batch_size_count") == 4
    assert _metric(metrics, "inferops_batch_size_sum") == 4


def test_overload_sheds_with_503_and_stays_up(model_dir, cache_env):
    # Peak memory under hostile load is test_memory.py's job (sampled while the attack runs).
    x = np.random.RandomState(0).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    with ServerProcess(
        model_dir / "cnn.onnx",
        max_batch_size=1,
        env=cache_env,
        extra_args=["--max-queue-size", "2"],
    ) as server:
        body, headers = codec.encode_v2_request({"input": x})

        def hammer(_):
            codes = []
            with httpx.Client(timeout=60) as c:
                for _ in range(4):
                    resp = c.post(
                        f"{server.url}/v2/models/cnn/infer", content=body, headers=headers
                    )
                    codes.append((resp.status_code, resp.headers.get("retry-after")))
            return codes

        results = [c for batch in _concurrently(hammer, [(i,) for i in range(24)]) for c in batch]
        assert server.returncode is None  # still running
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200
        assert _infer_model(server.url, "cnn", x).status_code == 200
        metrics = httpx.get(server.url + "/metrics").text
    codes = {code for code, _ in results}
    assert codes <= {200, 503} and 503 in codes and 200 in codes
    assert all(retry == "1" for code, retry in results if code == 503)
    assert _metric(metrics, 'inferops_requests_total{code="503",model="cnn"}') > 0


def test_sigterm_drains_in_flight_requests_and_exits_0(model_dir, cache_env):
    reference = _reference(model_dir, "mlp")
    xs = [np.full((1, 64), i / 10, np.float32) for i in range(10)]
    server = ServerProcess(
        model_dir / "mlp.onnx", max_batch_size=64, max_queue_delay_ms=3000, env=cache_env
    ).start()
    try:
        with ThreadPoolExecutor(len(xs)) as pool:
            futures = [pool.submit(_infer_model, server.url, "mlp", x) for x in xs]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # all ten are held in the batching queue
                text = httpx.get(server.url + "/metrics").text
                if _metric(text, "inferops_requests_in_flight") == len(xs):
                    break
                time.sleep(0.02)
            assert _metric(text, "inferops_requests_in_flight") == len(xs)
            server.signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        assert server.proc.wait(30) == 0
    finally:
        server.stop()
    for x, resp in zip(xs, responses, strict=True):
        assert resp.status_code == 200
        out = codec.decode_v2_response(resp.content, resp.headers[codec.HEADER_LENGTH])
        np.testing.assert_allclose(out["logits"], reference(x), atol=1e-5)
    assert "inferops serve: stopped" in server.stdout_text()


def test_openvino_backend_serves_the_same_answers(model_dir, cache_env):
    reference = _reference(model_dir, "cnn")
    x = np.random.RandomState(3).uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)
    with ServerProcess(model_dir / "cnn.onnx", backend="openvino", env=cache_env) as server:
        meta = httpx.get(server.url + "/v2/models/cnn").json()
        resp = _infer_model(server.url, "cnn", x)
        log = server.stdout_text()
    assert meta["platform"] == "openvino" and meta["inputs"][0]["shape"] == [-1, 3, 64, 64]
    out = codec.decode_v2_response(resp.content, resp.headers[codec.HEADER_LENGTH])
    np.testing.assert_allclose(out["logits"], reference(x), atol=1e-4)
    assert re.search(
        r"ready on http://127\.0\.0\.1:\d+ \(model cnn, backend openvino, "
        r"max batch 32\)",
        log,
    )


def test_token_guards_model_routes_but_not_health_or_metrics(tmp_path, cache_env):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with ServerProcess(
        "mlp", env=cache_env, extra_args=["--token-file", str(token_file)]
    ) as server:
        x = [0.0] * 64
        url = server.url
        assert httpx.post(url + "/predict", json={"inputs": x}).status_code == 401
        wrong = httpx.post(
            url + "/predict", json={"inputs": x}, headers={"Authorization": "Bearer s3cret-tokeN"}
        )
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(url + "/v2/models/mlp").status_code == 401
        good = {"Authorization": "Bearer s3cret-token"}
        assert httpx.post(url + "/predict", json={"inputs": x}, headers=good).status_code == 200
        assert httpx.get(url + "/v2/models/mlp", headers=good).json()["name"] == "mlp"
        for open_path in ("/v2/health/ready", "/v2/health/live", "/health", "/metrics"):
            assert httpx.get(url + open_path).status_code == 200, open_path


def _serve(*args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "inferops", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_startup_errors_exit_2_with_a_clear_message(tmp_path, model_dir, cache_env):
    env = {k: v for k, v in cache_env.items() if k != "INFEROPS_TOKEN"}
    exposed = _serve("--model", str(model_dir / "mlp.onnx"), "--host", "0.0.0.0", env=env)
    assert exposed.returncode == 2 and "without a token" in exposed.stderr
    missing = _serve("--model", str(tmp_path / "nope.onnx"), env=env)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x0a\x03abc definitely not a model")
    bad = _serve("--model", str(corrupt), "--port", str(free_port()), env=env)
    assert bad.returncode == 2 and "not a loadable ONNX model" in bad.stderr
    flag = _serve("--model", "mlp", "--max-batch-size", "0", env=env)
    assert flag.returncode == 2 and "--max-batch-size" in flag.stderr


def test_exposure_and_token_rules():
    from inferops.exitcodes import UsageError
    from inferops.server.cli import check_exposure, is_loopback, resolve_token

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")
    assert not is_loopback("example.org")
    check_exposure("127.0.0.1", None, False)
    check_exposure("0.0.0.0", "t", False)
    check_exposure("0.0.0.0", None, True)  # --insecure
    with pytest.raises(UsageError, match="--insecure"):
        check_exposure("0.0.0.0", None, False)
    assert resolve_token(None, None, {"INFEROPS_TOKEN": "from-env"}) == "from-env"
    assert resolve_token("flag", None, {"INFEROPS_TOKEN": "from-env"}) == "flag"
    assert resolve_token(None, None, {}) is None
    with pytest.raises(UsageError, match="not both"):
        resolve_token("a", Path("/x"), {})


def test_server_process_reports_an_early_death_and_cleans_up(tmp_path, cache_env):
    server = ServerProcess(tmp_path / "missing.onnx", env=cache_env)
    with pytest.raises(RuntimeError, match="exited with 2 before it was ready"):
        server.start()
    assert "no such file" in server.stderr_tail()
    assert not server.stdout_path.parent.exists()  # its temp log folder is gone
