"""Every route of a real ``inferops serve`` process, checked against the v2 spec and /predict."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from inferops.server import codec


@pytest.fixture(scope="module")
def reference(model_dir):
    session = ort.InferenceSession(str(model_dir / "mlp.onnx"), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0]


def _x(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).uniform(-1, 1, (rows, 64)).astype(np.float32)


def test_health_routes(client):
    for path in (
        "/v2/health/live",
        "/v2/health/ready",
        "/health",
        "/live",
        "/ready",
        "/v2/models/mlp/ready",
        "/v2/models/mlp/versions/1/ready",
    ):
        assert client.get(path).status_code == 200, path
    assert client.get("/v2/models/mlp/ready").json() == {"name": "mlp", "ready": True}


def test_server_metadata(client):
    meta = client.get("/v2").json()
    assert meta["name"] == "inferops" and "binary_tensor_data" in meta["extensions"]
    assert isinstance(meta["version"], str)


def test_model_metadata_reports_dynamic_batch_as_minus_one(client):
    meta = client.get("/v2/models/mlp").json()
    assert meta == {
        "name": "mlp",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.get("/v2/models/mlp/versions/1").json() == meta


@pytest.mark.parametrize("nested", [False, True])
def test_v2_infer_json(client, reference, nested):
    x = _x(3)
    data = x.tolist() if nested else x.ravel().tolist()
    resp = client.post(
        "/v2/models/mlp/infer",
        json={
            "id": "req-7",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 64], "data": data}],
        },
    )
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["model_name"] == "mlp" and doc["id"] == "req-7"
    (out,) = doc["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [3, 10]
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 10), reference(x), atol=1e-5)


def test_v2_infer_binary_extension(client, reference):
    x = _x(5, seed=1)
    body, headers = codec.encode_v2_request({"input": x}, binary=True, binary_output=True)
    resp = client.post("/v2/models/mlp/versions/1/infer", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    length = resp.headers[codec.HEADER_LENGTH]
    header = resp.content[: int(length)]
    assert b'"binary_data_size":200' in header  # 5 x 10 float32
    out = codec.decode_v2_response(resp.content, length)["logits"]
    np.testing.assert_allclose(out, reference(x), atol=1e-6)


def test_v2_binary_output_for_named_output_only(client, reference):
    x = _x(2, seed=2)
    resp = client.post(
        "/v2/models/mlp/infer",
        json={
            "inputs": [
                {"name": "input", "datatype": "FP32", "shape": [2, 64], "data": x.ravel().tolist()}
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        },
    )
    assert resp.status_code == 200
    out = codec.decode_v2_response(resp.content, resp.headers[codec.HEADER_LENGTH])
    np.testing.assert_allclose(out["logits"], reference(x), atol=1e-6)


def test_predict(client, reference):
    x = _x(2, seed=3)
    resp = client.post("/predict", json={"inputs": x.tolist()})
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["model"] == "mlp"
    np.testing.assert_allclose(np.array(doc["outputs"]), reference(x), atol=1e-5)
    single = client.post("/predict", json={"inputs": x[0].tolist()}).json()
    assert np.array(single["outputs"]).shape == (1, 10)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "/v2/models/nope/infer", {"inputs": []}, 404, "unknown model 'nope'"),
        ("GET", "/v2/models/nope", None, 404, "unknown model"),
        ("GET", "/v2/models/mlp/versions/2", None, 404, "version '2'"),
        ("GET", "/no/such/route", None, 404, "no route"),
        ("GET", "/v2/models/mlp/infer", None, 405, "not allowed"),
        (
            "POST",
            "/v2/models/mlp/infer",
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 63], "data": [0] * 63}]},
            400,
            "expected shape [-1, 64]",
        ),
        (
            "POST",
            "/v2/models/mlp/infer",
            {
                "inputs": [
                    {"name": "input", "datatype": "INT32", "shape": [1, 64], "data": [0] * 64}
                ]
            },
            400,
            "datatype must be FP32",
        ),
        (
            "POST",
            "/v2/models/mlp/infer",
            {
                "inputs": [
                    {"name": "images", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}
                ]
            },
            400,
            "unknown input 'images'",
        ),
        ("POST", "/predict", {"inputs": [[1, 2]]}, 400, "expected shape"),
    ],
)
def test_errors_have_the_right_status_and_name_the_problem(
    client, method, path, body, status, fragment
):
    resp = client.request(method, path, json=body)
    assert resp.status_code == status
    assert fragment in resp.json()["error"]


def test_non_json_body_is_400(client):
    resp = client.post("/v2/models/mlp/infer", content=b"\xff\xfe not json")
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]


def test_body_over_the_limit_is_413(client):
    resp = client.post("/predict", content=b"[" + b"0," * 200_000 + b"0]")
    assert resp.status_code == 413 and "--max-body-bytes" in resp.json()["error"]


def test_metrics_exposition(client):
    client.post("/predict", json={"inputs": _x(1).tolist()})
    client.post("/predict", json={"inputs": [1]})
    text = client.get("/metrics").text
    for family in (
        "inferops_request_duration_seconds_bucket",
        "inferops_requests_total",
        "inferops_queue_wait_seconds_bucket",
        "inferops_batch_size_bucket",
        "inferops_requests_in_flight",
        "inferops_model_loaded",
    ):
        assert family in text, family
    assert 'inferops_model_loaded{model="mlp"} 1.0' in text
    assert 'inferops_requests_total{code="400",model="mlp"}' in text
    assert 'inferops_request_duration_seconds_count{code="200",model="mlp"}' in text


def _stat(client) -> dict:
    (stat,) = client.get("/v2/models/mlp/stats").json()["model_stats"]
    return stat


def test_statistics_count_successes_failures_rows_and_executions(client):
    before = _stat(client)
    assert client.post("/predict", json={"inputs": [1]}).status_code == 400
    assert client.post("/predict", json={"inputs": _x(2).tolist()}).status_code == 200
    assert client.get("/v2/models/nope/stats").status_code == 404  # not this model's request
    after = _stat(client)
    b, a = before["inference_stats"], after["inference_stats"]
    assert a["fail"]["count"] == b["fail"]["count"] + 1
    assert a["success"]["count"] == b["success"]["count"] + 1
    assert after["inference_count"] == before["inference_count"] + 2  # rows
    assert after["execution_count"] == before["execution_count"] + 1
    assert a["success"]["ns"] > b["success"]["ns"] and a["fail"]["ns"] > b["fail"]["ns"]
    assert client.get("/v2/models/stats").json()["model_stats"][0]["name"] == "mlp"


def test_repository_routes(client):
    index = client.post("/v2/repository/index", json={"ready": True})
    assert index.json() == [{"name": "mlp", "version": "1", "state": "READY", "reason": ""}]
    assert client.post("/v2/repository/index").status_code == 200  # the body is optional
    bad = client.post("/v2/repository/index", json={"ready": "yes"})
    assert bad.status_code == 400 and "'ready'" in bad.json()["error"]
    huge = client.post("/v2/repository/index", content=b" " * 70_000)
    assert huge.status_code == 413
    assert client.post("/v2/repository/models/mlp/load").status_code == 200
    unload = client.post("/v2/repository/models/mlp/unload")
    assert unload.status_code == 400 and "one model" in unload.json()["error"]
    assert client.post("/v2/repository/models/other/load").status_code == 404
