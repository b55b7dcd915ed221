"""Fuzzing the request decoding: in-process (many examples) and against a real server (no 5xx).

Every example either parses into arrays that fit the model or is refused with
:class:`codec.BadRequest` (HTTP 400); anything else is a bug. Examples found
failing are kept as ``@example`` cases and in ``REGRESSIONS`` below. Run the
long random profile with ``make fuzz`` (see ``fuzzing.py``).
"""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from inferops.server import codec
from inferops.server.tensors import TensorSpec
from tests.server.fuzzing import JSON, deep_body, dumps, predict_body, scaled, v2_request

MLP_IN = {"input": TensorSpec("input", "FP32", (-1, 64))}
MLP_OUT = {"logits": TensorSpec("logits", "FP32", (-1, 10))}
#: Other model signatures the codec must handle: every dim dynamic, integer, unbatched, two inputs.
SPECS = [
    MLP_IN,
    {"input": TensorSpec("input", "FP32", (-1, -1, -1))},
    {"input": TensorSpec("input", "INT8", (-1,))},
    {"input": TensorSpec("input", "FP32", (2, 64))},
    {"input": TensorSpec("input", "FP32", (-1, 64)), "x": TensorSpec("x", "INT64", (-1, 1))},
]


def _v2(**item) -> bytes:
    base = {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0.0] * 64}
    base.update(item)
    return dumps({"inputs": [base]})


#: Requests that once got a 5xx or an uncaught exception; each must now be a 400.
REGRESSIONS = [
    pytest.param(_v2(shape=[1] * 65, data=[0.0]), {}, id="issue8-65-dims"),
    pytest.param(_v2(shape=[0, 2**62, 2**62], data=[]), {}, id="issue8-2^62-dims"),
    pytest.param(_v2(shape=[0, 2**62, 2**62], data=[]), {}, id="2^62-dims-rank3"),
    pytest.param(_v2(shape=[1, 2**40, 0], data=[]), {}, id="huge-dim-zero-count"),
    pytest.param(_v2(shape=[-1, 64]), {}, id="minus-one-dim"),
    pytest.param(_v2(shape=[2**63 - 1, 64]), {}, id="int64-max-dim"),
    pytest.param(deep_body(5000, 300_000), {}, id="3MB-nested-5000-deep"),
    pytest.param(deep_body(500, 64), {}, id="nested-500-deep"),
    pytest.param(_v2(datatype="BYTES", data=["a"] * 64), {}, id="bytes-tensor"),
    pytest.param(
        _v2(data=None, parameters={"binary_data_size": 256}),
        {"inference-header-content-length": "10"},
        id="header-length-inside-json",
    ),
    pytest.param(_v2(parameters=[1]), {}, id="input-parameters-list"),
    pytest.param(
        dumps(
            {
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}
                ],
                "parameters": {"binary_data_output": "yes"},
            }
        ),
        {},
        id="binary-data-output-string",
    ),
    pytest.param(
        dumps(
            {
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}
                ],
                "outputs": [{"name": "logits", "parameters": 3}],
            }
        ),
        {},
        id="output-parameters-number",
    ),
    pytest.param(_v2(), {"inference-header-content-length": "1_0"}, id="header-length-underscore"),
]


def _parse_or_refuse(body: bytes, headers: dict, inputs: dict) -> None:
    event("parsed" if _parses(body, headers, inputs) else "refused")


def _parses(body: bytes, headers: dict, inputs: dict) -> bool:
    try:
        req = codec.parse_v2(body, headers.get("inference-header-content-length"), inputs, MLP_OUT)
    except codec.BadRequest as exc:
        assert str(exc)
        return False
    for name, array in req.inputs.items():
        assert inputs[name].check(array) is None
        assert array.dtype == inputs[name].dtype
    return True


@scaled(2)
@given(request=v2_request(), spec=st.sampled_from(SPECS))
def test_v2_decoding_either_fits_the_model_or_is_a_bad_request(request, spec):
    body, headers, _ = request
    _parse_or_refuse(body, headers, spec)


@pytest.mark.parametrize(("body", "headers"), REGRESSIONS)
@pytest.mark.parametrize("spec", SPECS, ids=["mlp", "dynamic3", "int8", "unbatched", "two"])
def test_regressions_are_bad_requests(body, headers, spec):
    with pytest.raises(codec.BadRequest):
        codec.parse_v2(body, headers.get("inference-header-content-length"), spec, MLP_OUT)


@scaled(2)
@given(body=predict_body(), spec=st.sampled_from(SPECS))
def test_predict_decoding_either_fits_the_model_or_is_a_bad_request(body, spec):
    try:
        arrays = codec.parse_predict(body, spec)
    except codec.BadRequest:
        return
    for name, array in arrays.items():
        assert spec[name].check(array) is None and array.dtype == spec[name].dtype


# -- against a real server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_client(mlp_server):
    # Module-scoped: hypothesis reuses one client for all its examples, which is intended.
    with httpx.Client(base_url=mlp_server.url, timeout=30) as c:
        yield c


def _refused_properly(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        error = resp.json()["error"]  # every refusal says why
        event(f"{resp.status_code} {error.split(':')[0][:30]}")  # --hypothesis-show-statistics
    else:
        assert resp.status_code == 200


ISSUE = "/v2/models/mlp/infer"


@scaled(1)
@given(request=v2_request())
@example(request=(_v2(shape=[1] * 65, data=[0.0]), {}, ISSUE))
@example(request=(_v2(shape=[0, 2**62, 2**62], data=[]), {}, ISSUE))
@example(request=(deep_body(5000, 1000), {}, ISSUE))
def test_v2_requests_never_get_a_5xx(fuzz_client, request):
    body, headers, path = request
    headers = {k: v.strip() for k, v in headers.items()}  # HTTP itself trims header values
    resp = fuzz_client.post(path, content=body, headers=headers)
    _refused_properly(resp)
    if resp.status_code == 200:
        event("200")
        length = resp.headers.get(codec.HEADER_LENGTH)
        assert codec.decode_v2_response(resp.content, length)["logits"].shape[1] == 10


@scaled(0.5)
@given(
    body=st.binary(max_size=400) | JSON.map(dumps),
    headers=st.dictionaries(
        st.sampled_from(["inference-header-content-length", "content-type", "authorization"]),
        st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12),
        max_size=3,
    ),
)
def test_arbitrary_bytes_and_headers_never_get_a_5xx(fuzz_client, body, headers):
    _refused_properly(fuzz_client.post("/v2/models/mlp/infer", content=body, headers=headers))


@scaled(1)
@given(body=predict_body())
@example(body=b'{"inputs":' + b"[" * 5000 + b"0" + b"]" * 5000 + b"}")
def test_predict_never_gets_a_5xx(fuzz_client, body):
    resp = fuzz_client.post("/predict", content=body)
    _refused_properly(resp)
    if resp.status_code == 200:
        event("200")
        assert np.asarray(resp.json()["outputs"]).shape[-1] == 10


@pytest.mark.parametrize(("body", "headers"), REGRESSIONS)
def test_regressions_get_400_from_the_server(client, body, headers):
    resp = client.post("/v2/models/mlp/infer", content=body, headers=headers)
    assert resp.status_code in (400, 413), resp.text[:300]  # 413: the 3 MB one, over 256k
    assert resp.json()["error"]


def test_server_survived_the_fuzzing(client):
    assert client.get("/v2/health/ready").status_code == 200
    assert client.post("/predict", json={"inputs": [0.0] * 64}).status_code == 200
    ok = client.post("/v2/models/mlp/infer", content=_v2())
    assert ok.status_code == 200 and orjson.loads(ok.content)["outputs"][0]["shape"] == [1, 10]
