"""Request parsing and response encoding, in-process (the HTTP tests cover the wiring)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from inferops.server import codec
from inferops.server.tensors import TensorSpec

INPUTS = {"input": TensorSpec("input", "FP32", (-1, 4))}
OUTPUTS = {"logits": TensorSpec("logits", "FP32", (-1, 2))}


def _v2(**item):
    base = {"name": "input", "datatype": "FP32", "shape": [2, 4], "data": list(range(8))}
    base.update(item)
    return orjson.dumps({"inputs": [base]})


def test_flat_and_nested_data_give_the_same_tensor():
    flat = codec.parse_v2(_v2(), None, INPUTS, OUTPUTS).inputs["input"]
    nested = codec.parse_v2(_v2(data=[[0, 1, 2, 3], [4, 5, 6, 7]]), None, INPUTS, OUTPUTS).inputs[
        "input"
    ]
    assert flat.dtype == np.float32 and flat.shape == (2, 4)
    np.testing.assert_array_equal(flat, nested)


def test_binary_request_round_trip():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    body, headers = codec.encode_v2_request({"input": x}, id="r1")
    req = codec.parse_v2(body, headers[codec.HEADER_LENGTH], INPUTS, OUTPUTS)
    np.testing.assert_array_equal(req.inputs["input"], x)
    assert req.id == "r1" and req.binary == {"logits"}
    out = {"logits": np.arange(6, dtype=np.float32).reshape(3, 2)}
    resp, resp_headers = codec.encode_v2("m", "1", req, out)
    decoded = codec.decode_v2_response(resp, resp_headers[codec.HEADER_LENGTH])
    np.testing.assert_array_equal(decoded["logits"], out["logits"])


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (orjson.dumps({"inputs": []}), None, "non-empty list"),
        (_v2(name="x"), None, "unknown input 'x'"),
        (_v2(datatype="INT64"), None, "datatype must be FP32"),
        (_v2(shape=[2, 5], data=list(range(10))), None, "expected shape [-1, 4]"),
        (_v2(shape=[8]), None, "expected 2 dimensions"),
        (_v2(data=[1, 2, 3]), None, "needs 8 values, got 3"),
        (_v2(data=["a"] * 8), None, "not FP32"),
        (_v2(data=[[1, 2], [3]]), None, "rectangular"),
        (_v2(shape=[2, "4"]), None, "must be an integer"),
        (
            _v2(parameters={"binary_data_size": 32}),
            str(len(_v2(parameters={"binary_data_size": 32}))),
            "runs past the end",
        ),
        (_v2(parameters={"binary_data_size": 31}), None, "does not match"),
        (_v2(), "abc", "must be a non-negative integer"),
        (_v2(), "99999", "outside the body"),
    ],
)
def test_bad_requests_name_the_problem(body, header, message):
    with pytest.raises(codec.BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        codec.parse_v2(body, header, INPUTS, OUTPUTS)


def test_unclaimed_binary_bytes_are_rejected():
    body, headers = codec.encode_v2_request({"input": np.zeros((1, 4), np.float32)})
    with pytest.raises(codec.BadRequest, match="not claimed"):
        codec.parse_v2(body + b"xx", headers[codec.HEADER_LENGTH], INPUTS, OUTPUTS)


def test_predict_accepts_one_sample_a_batch_or_flat_samples():
    cnn = {"input": TensorSpec("input", "FP32", (-1, 3, 2, 2))}
    one = codec.parse_predict(orjson.dumps({"inputs": np.zeros((3, 2, 2)).tolist()}), cnn)
    batch = codec.parse_predict(orjson.dumps({"inputs": np.zeros((2, 3, 2, 2)).tolist()}), cnn)
    flat = codec.parse_predict(orjson.dumps({"inputs": [0.0] * 24}), cnn)
    assert one["input"].shape == (1, 3, 2, 2)
    assert batch["input"].shape == flat["input"].shape == (2, 3, 2, 2)
    with pytest.raises(codec.BadRequest, match="whole number of samples"):
        codec.parse_predict(orjson.dumps({"inputs": [0.0] * 13}), cnn)
    with pytest.raises(codec.BadRequest, match="with 'inputs'"):
        codec.parse_predict(b"{}", cnn)


def test_integer_inputs_reject_floats_and_overflow():
    ints = {"ids": TensorSpec("ids", "INT8", (-1,))}
    ok = codec.parse_predict(b'{"inputs": [1, 2, 3]}', ints)
    assert ok["ids"].dtype == np.int8
    for bad in (b'{"inputs": [1.5]}', b'{"inputs": [300]}', b'{"inputs": [true]}'):
        with pytest.raises(codec.BadRequest, match="not INT8"):
            codec.parse_predict(bad, ints)


def test_default_body_limit_fits_the_largest_legitimate_request():
    from inferops.server import limits

    mlp = [TensorSpec("input", "FP32", (-1, 64))]
    cnn = [TensorSpec("input", "FP32", (-1, 3, 64, 64))]
    dense = [TensorSpec("input", "FP32", (-1, 4096))]
    assert limits.default_body_limit(mlp, 32) == 1024**2  # the 1 MiB floor
    # 32 rows x 12288 values x 32 bytes of JSON + 64 KiB, rounded up to a MiB
    assert limits.default_body_limit(cnn, 32) == 13 * 1024**2
    assert limits.default_body_limit(dense, 32) == 5 * 1024**2
    assert limits.default_body_limit(dense, 1) == 1024**2
    sequence = [TensorSpec("ids", "INT64", (-1, -1))]
    assert limits.default_body_limit(sequence, 32) == 64 * 1024**2  # nothing to derive from
    # a real 32-row cnn request as JSON, written at full precision, fits
    x = np.random.RandomState(0).uniform(-1, 1, (32, 3, 64, 64)).astype(np.float64)
    body = orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x}]},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    assert len(body) < limits.default_body_limit(cnn, 32)
    assert limits.default_inflight_limit(13 * 1024**2) == 8 * 13 * 1024**2
    assert limits.default_inflight_limit(1024**2) == 64 * 1024**2


def test_body_budget_refuses_what_would_pass_the_limit_and_releases_all():
    from inferops.server import limits

    budget = limits.BodyBudget(100)
    a, b = limits.Hold(budget), limits.Hold(budget)
    assert a.take(60) and a.take(30)
    assert not b.take(20) and b.size == 0  # refused: nothing reserved
    assert b.take(10) and budget.held == 100
    a.release()
    a.release()  # idempotent
    assert budget.held == 10 and b.take(90)
