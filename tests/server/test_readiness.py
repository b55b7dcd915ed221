"""Readiness turns true only after load + warm-up (in-process app, so the window is observable).

The app runs in a fresh interpreter: the load tests import Locust into this pytest
process, and Locust monkey-patches threading with gevent, which deadlocks
starlette's TestClient portal.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import sys, warnings
from pathlib import Path
from inferops.server.app import InferenceServer, ServerConfig
with warnings.catch_warnings():  # starlette nags about preferring httpx2; httpx works fine
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

server = InferenceServer(ServerConfig(model_path=Path(sys.argv[1]), name="mlp"))
with TestClient(server.app) as http:
    assert http.get("/v2/health/live").status_code == 200  # alive while loading
    assert http.get("/v2/health/ready").status_code == 400  # v2 spec: 4xx = not ready
    assert http.get("/v2/models/mlp/ready").json() == {"name": "mlp", "ready": False}
    not_ready = http.get("/ready")
    assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "1"
    early = http.post("/predict", json={"inputs": [0.0] * 64})
    assert early.status_code == 503 and "not ready" in early.json()["error"], early.text
    assert 'inferops_model_loaded{model="mlp"} 0.0' in http.get("/metrics").text

    server.load()

    assert http.get("/v2/health/ready").status_code == 200
    assert http.get("/ready").status_code == 200
    assert http.post("/predict", json={"inputs": [0.0] * 64}).status_code == 200
    assert 'inferops_model_loaded{model="mlp"} 1.0' in http.get("/metrics").text
print("ok")
"""


def test_not_ready_until_loaded_then_ready(model_dir):
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir / "mlp.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
