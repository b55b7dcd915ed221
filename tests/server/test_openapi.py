"""schemathesis against the server's own OpenAPI document: no 5xx, and every answer as documented.

The document (``GET /openapi.json``) is built for the served model, so generated
bodies name its real inputs and ranks. Both schemathesis generation modes run:
positive (schema-valid requests) and negative (schema-violating ones). Checks:
no server error, only documented status codes and content types, and response
bodies that match their schemas.
"""

from __future__ import annotations

import collections

import httpx
import pytest
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.fuzzing import scaled

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(mlp_server):
    return schemathesis.openapi.from_url(mlp_server.url + "/openapi.json")


# schemathesis' own pytest plugin (``from_fixture``) needs pytest internals that pytest 9
# removed, so each generation mode runs as plain hypothesis tests. One test per operation,
# not one over the whole document: drawing operations at random left one unexercised in
# a CI run, so "every operation was tried" could fail by chance.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_route_answers_as_documented_and_never_5xx(api_schema, mlp_server, mode):
    operations = _operations(api_schema)
    seen: collections.Counter = collections.Counter()
    for operation, takes_input in operations.values():
        if mode == GenerationMode.NEGATIVE and not takes_input:
            continue  # nothing to make invalid

        @scaled(0.1)
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call_and_validate(base_url=mlp_server.url, checks=CHECKS)
            seen[f"{case.method.upper()} {case.path}", response.status_code] += 1

        check()
    print(sorted(seen.items()))
    exercised = {op for op, _ in seen}
    if mode == GenerationMode.POSITIVE:
        assert exercised == set(operations)  # every documented operation
        assert seen["POST /v2/models/{name}/infer", 200] >= 1  # bodies that reach the model
    else:  # only operations with a parameter or a body can be given invalid ones
        assert {op for op, (_, takes_input) in operations.items() if takes_input} == exercised


def _operations(schema) -> dict:
    """``"METHOD /path"`` -> (the operation, whether it takes any input: parameters or a body)."""
    out = {}
    for result in schema.get_all_operations():
        op = result.ok()
        takes_input = bool(op.definition.raw.get("parameters") or op.body)
        out[f"{op.method.upper()} {op.path}"] = (op, takes_input)
    return out


def test_the_document_describes_the_served_model(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.0")
    item = doc["components"]["schemas"]["InferInput"]["properties"]
    assert item["name"]["enum"] == ["input"] and item["datatype"]["enum"] == ["FP32"]
    assert item["shape"]["minItems"] == item["shape"]["maxItems"] == 2
    example = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"][
        "application/json"
    ]["example"]
    # the document's own example is a request the server accepts
    assert client.post("/v2/models/mlp/infer", json=example).status_code == 200
    assert {"/v2/models/{name}/config", "/v2/models/stats", "/v2/repository/index"} <= set(
        doc["paths"]
    )


def test_the_document_needs_the_token_when_the_server_has_one(model_dir, cache_env):
    from inferops.server.process import ServerProcess

    with ServerProcess(model_dir / "mlp.onnx", token="t0k", env=cache_env) as server:
        assert httpx.get(server.url + "/openapi.json").status_code == 401
        doc = httpx.get(server.url + "/openapi.json", headers={"Authorization": "Bearer t0k"})
    assert doc.json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
