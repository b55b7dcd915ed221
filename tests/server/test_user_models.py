"""User-supplied ONNX files load and serve like the embedded ones: several inputs, integer
inputs, a fixed batch dimension (never merged), other dynamic dimensions (merged only alike)."""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper

from inferops.server.app import InferenceServer, ServerConfig

with warnings.catch_warnings():  # starlette nags about preferring httpx2; httpx works fine
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _save(model: onnx.ModelProto, path) -> None:
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _two_input_model(path, batch="n") -> None:
    """out = a + cast(b) with a: FP32 [batch, 3], b: INT64 [batch, 3]."""
    nodes = [
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "bf"], ["sum"]),
    ]
    graph = helper.make_graph(
        nodes,
        "user",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("b", TensorProto.INT64, [batch, 3]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [batch, 3])],
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_two_input_model_with_an_integer_input(tmp_path):
    path = tmp_path / "user.onnx"
    _two_input_model(path)
    server = InferenceServer(ServerConfig(model_path=path, name="user"))
    server.load()
    with TestClient(server.app) as http:
        meta = http.get("/v2/models/user").json()
        assert meta["inputs"] == [
            {"name": "a", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "b", "datatype": "INT64", "shape": [-1, 3]},
        ]
        resp = http.post(
            "/v2/models/user/infer",
            json={
                "inputs": [
                    {"name": "a", "datatype": "FP32", "shape": [1, 3], "data": [0.5, 1, 2]},
                    {"name": "b", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]},
                ]
            },
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["outputs"][0]["data"] == [1.5, 3, 5]
        simple = http.post("/predict", json={"inputs": {"a": [[1, 1, 1]], "b": [[2, 2, 2]]}})
        assert simple.json()["outputs"] == [[3, 3, 3]]
        missing = http.post("/predict", json={"inputs": {"a": [[1, 1, 1]]}})
        assert missing.status_code == 400 and "missing input" in missing.json()["error"]
        uneven = http.post("/predict", json={"inputs": {"a": [[1, 1, 1]], "b": [[2, 2, 2]] * 2}})
        assert uneven.status_code == 400 and "batch size" in uneven.json()["error"]
        unnamed = http.post("/predict", json={"inputs": [[1, 1, 1]]})
        assert unnamed.status_code == 400 and "several inputs" in unnamed.json()["error"]


def test_fixed_batch_dimension_disables_merging(tmp_path):
    path = tmp_path / "fixed.onnx"
    _two_input_model(path, batch=1)
    server = InferenceServer(ServerConfig(model_path=path, name="fixed", max_batch_size=8))
    server.load()
    assert server.batcher.max_batch_size == 1 and not server.batcher.batched
    with TestClient(server.app) as http:
        assert http.get("/v2/models/fixed").json()["inputs"][0]["shape"] == [1, 3]
        ok = http.post("/predict", json={"inputs": {"a": [[1, 2, 3]], "b": [[0, 0, 0]]}})
        assert ok.status_code == 200
        two = http.post("/predict", json={"inputs": {"a": [[1, 2, 3]] * 2, "b": [[0] * 3] * 2}})
        assert two.status_code == 400 and "expected shape [1, 3]" in two.json()["error"]


def test_other_dynamic_dims_merge_only_requests_of_the_same_shape(tmp_path):
    path = tmp_path / "seq.onnx"
    # Per-row sums keep the batch axis: ReduceSum over axis 1 via an axes input.
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=0)],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "t"])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["n"])],
        initializer=[axes],
    )
    _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    server = InferenceServer(
        ServerConfig(model_path=path, name="seq", max_batch_size=8, max_queue_delay_ms=200)
    )
    server.load()

    async def main():
        shapes = [(1, 2), (2, 5), (1, 2)]
        futures = [server.batcher.submit({"x": np.ones(s, np.float32)}) for s in shapes]
        return await asyncio.gather(*futures)

    results = asyncio.run(main())
    assert [r["total"].tolist() for r in results] == [[2.0], [5.0, 5.0], [2.0]]
    server.batcher.stop()
