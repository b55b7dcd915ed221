"""Hypothesis throws malformed bodies and headers at a real server: never a 5xx, never a crash."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _dumps(doc) -> bytes:
    # stdlib json: unlike orjson it writes integers beyond 64 bits, one more thing to survive.
    return json.dumps(doc).encode()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
DATATYPES = st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES", "fp32", "", 3])
SHAPES = st.one_of(
    st.lists(st.integers(-3, 130), max_size=4), st.just([1, 64]), st.just([2, 64]), JSON
)
DATA = st.one_of(
    st.lists(st.floats(width=32, allow_nan=False), max_size=130),
    st.lists(st.lists(st.integers(-5, 5), max_size=65), max_size=3),
    JSON,
)
INPUT = st.fixed_dictionaries(
    {"name": st.sampled_from(["input", "logits", "x"]) | st.text(max_size=5)},
    optional={
        "datatype": DATATYPES,
        "shape": SHAPES,
        "data": DATA,
        "parameters": st.dictionaries(
            st.sampled_from(["binary_data_size", "x"]), st.integers(-10, 600) | JSON, max_size=2
        ),
    },
)
V2_DOC = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.lists(INPUT, max_size=3) | JSON,
        "id": JSON,
        "outputs": st.lists(
            st.dictionaries(st.sampled_from(["name", "parameters"]), JSON), max_size=2
        )
        | JSON,
        "parameters": st.dictionaries(st.sampled_from(["binary_data_output"]), JSON),
    },
)
BODY = st.one_of(
    V2_DOC.map(_dumps),
    st.builds(lambda doc, tail: _dumps(doc) + tail, V2_DOC, st.binary(max_size=600)),
    st.binary(max_size=300),
    JSON.map(_dumps),
)
HEADERS = st.dictionaries(
    st.sampled_from(["inference-header-content-length", "content-type", "authorization"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12),
    max_size=3,
)


@pytest.fixture(scope="module")
def fuzz_client(mlp_server):
    # Module-scoped: hypothesis reuses one client for all its examples, which is intended.
    with httpx.Client(base_url=mlp_server.url, timeout=30) as c:
        yield c


PATHS = st.sampled_from(
    [
        "/v2/models/mlp/infer",
        "/v2/models/mlp/versions/1/infer",
        "/predict",
        "/v2/models/other/infer",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(path=PATHS, body=BODY, headers=HEADERS)
def test_malformed_requests_never_get_a_5xx(fuzz_client, path, body, headers):
    resp = fuzz_client.post(path, content=body, headers=headers)
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code >= 400:
        assert resp.json()["error"]  # every refusal says why


@settings(max_examples=60, deadline=None, derandomize=True)
@given(doc=JSON)
def test_predict_with_arbitrary_json_inputs(fuzz_client, doc):
    resp = fuzz_client.post("/predict", content=_dumps({"inputs": doc}))
    assert resp.status_code in (200, 400), resp.text


def test_server_survived_the_fuzzing(client):
    assert client.get("/v2/health/ready").status_code == 200
    assert client.post("/predict", json={"inputs": [0.0] * 64}).status_code == 200
