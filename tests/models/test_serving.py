"""Profiles served by the real ``inferops serve``: INT8 ONNX on ONNX Runtime, IR on OpenVINO."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from inferops.models.compare import Runner
from inferops.server.process import ServerProcess

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "to, backend",
    [("int8-static", "onnxruntime"), ("openvino", "openvino"), ("openvino-int8", "openvino")],
)
def test_served_profile_answers_like_the_engine(fp32, profile, to, backend):
    out = Path(profile("mlp", to)["output"]["path"])
    x = np.random.RandomState(5).uniform(-1, 1, (2, 64)).astype(np.float32)
    expected = Runner(out).infer({"input": x})[0]
    with ServerProcess(out, backend=backend, max_batch_size=1) as server:
        meta = httpx.get(f"{server.url}/v2/models/{out.stem}", timeout=30).json()
        assert [t["name"] for t in meta["inputs"]] == ["input"]
        assert [t["name"] for t in meta["outputs"]] == ["logits"]
        body = {
            "inputs": [
                {"name": "input", "shape": [2, 64], "datatype": "FP32", "data": x.ravel().tolist()}
            ]
        }
        reply = httpx.post(f"{server.url}/v2/models/{out.stem}/infer", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    (output,) = reply.json()["outputs"]
    got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    np.testing.assert_allclose(got, expected, atol=1e-5)
