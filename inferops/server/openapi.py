"""The server's OpenAPI 3.0 document (``GET /openapi.json``), built for the model it serves.

Request schemas name the model's real inputs, datatypes, ranks and outputs, so a
client generator or a schema-driven fuzzer (the tests run schemathesis against it)
produces requests that reach the model instead of stopping at the first check.
Every status code a route can answer is listed with the ``{"error": ...}`` body.
"""

from __future__ import annotations

import math

from inferops import __version__
from inferops.server.tensors import V2_TO_NUMPY

_ERROR_CODES = {
    "400": "malformed request; the message names the problem",
    "401": "missing or wrong bearer token (only when the server has one)",
    "404": "unknown model, version or route",
    "405": "method not allowed (a name holding '/' can land on another route)",
    "413": "request body over --max-body-bytes",
    "503": "not ready, queue full or request-body budget spent; see Retry-After",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict, example=None) -> dict:
    media = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _responses(ok: dict | None, *errors: str, ok_description: str = "success") -> dict:
    out: dict = {}
    if ok is not None:
        out["200"] = {"description": ok_description, "content": ok}
    for code in errors:
        out[code] = {
            "description": _ERROR_CODES[code],
            "content": _json_content(_ref("Error")),
        }
    return out


def _op(summary: str, responses: dict, **extra) -> dict:
    return {"summary": summary, "responses": responses, **extra}


def _param(name: str, values: list[str]) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": values},
    }


def _example_request(server) -> dict:
    """One valid request (a single row of zeros), also used by schemathesis' example phase."""
    inputs = []
    for spec in server.inputs.values():
        shape = [1 if d == -1 else d for d in spec.shape]
        value = False if spec.datatype == "BOOL" else 0
        inputs.append(
            {
                "name": spec.name,
                "datatype": spec.datatype,
                "shape": shape,
                "data": [value] * math.prod(shape),
            }
        )
    return {"id": "example", "inputs": inputs}


def _schemas(server) -> dict:
    specs = list(server.inputs.values())
    ranks = {len(s.shape) for s in specs}
    sample_values = max((math.prod(max(d, 1) for d in s.shape[1:]) for s in specs), default=1)
    tensor_shape = {
        "type": "array",
        "items": {"type": "integer", "minimum": 0},
        "minItems": min(ranks, default=0),
        "maxItems": max(ranks, default=0),
        "description": "the model's shapes: "
        + "; ".join(f"{s.name} {list(s.shape)} (-1 = any size)" for s in specs),
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "InferInput": {
            "type": "object",
            "required": ["name", "datatype", "shape"],
            "properties": {
                "name": {"type": "string", "enum": [s.name for s in specs]},
                "datatype": {"type": "string", "enum": sorted({s.datatype for s in specs})},
                "shape": tensor_shape,
                "data": {
                    "type": "array",
                    "items": {"oneOf": [{"type": "number"}, {"type": "boolean"}]},
                    "maxItems": sample_values * 4,
                    "description": "row-major values (flat, or nested to the shape)",
                },
                "parameters": {
                    "type": "object",
                    "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                },
            },
        },
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "inputs": {"type": "array", "minItems": 1, "items": _ref("InferInput")},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "enum": list(server.outputs)},
                            "parameters": {
                                "type": "object",
                                "properties": {"binary_data": {"type": "boolean"}},
                            },
                        },
                    },
                },
                "parameters": {
                    "type": "object",
                    "properties": {"binary_data_output": {"type": "boolean"}},
                },
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "datatype", "shape"],
                        "properties": {
                            "name": {"type": "string"},
                            "datatype": {"type": "string", "enum": sorted(V2_TO_NUMPY)},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "data": {"type": "array"},
                            "parameters": {"type": "object"},
                        },
                    },
                },
            },
        },
        "PredictRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "inputs": {
                    "oneOf": [
                        {"type": "array", "items": {}},
                        {"type": "object", "additionalProperties": {"type": "array"}},
                    ],
                    "description": "one sample, a list of samples, a flat list of whole "
                    "samples, or {input name: values} for several inputs",
                }
            },
        },
        "PredictResponse": {
            "type": "object",
            "required": ["model", "outputs"],
            "properties": {"model": {"type": "string"}, "outputs": {}},
        },
        "TensorMetadata": {
            "type": "object",
            "required": ["name", "datatype", "shape"],
            "properties": {
                "name": {"type": "string"},
                "datatype": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": _ref("TensorMetadata")},
                "outputs": {"type": "array", "items": _ref("TensorMetadata")},
            },
        },
        "Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        "ModelConfig": {
            "type": "object",
            "description": "Triton's ModelConfig (model_config.proto) as JSON",
            "required": ["name", "platform", "max_batch_size", "input", "output"],
            "properties": {
                "name": {"type": "string"},
                "platform": {"type": "string"},
                "max_batch_size": {"type": "integer"},
                "input": {"type": "array"},
                "output": {"type": "array"},
                "dynamic_batching": {"type": "object"},
            },
        },
        "Duration": {
            "type": "object",
            "required": ["count", "ns"],
            "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}},
        },
        "ModelStats": {
            "type": "object",
            "required": ["model_stats"],
            "properties": {
                "model_stats": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "inference_count", "execution_count"],
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "last_inference": {"type": "integer"},
                            "inference_count": {"type": "integer"},
                            "execution_count": {"type": "integer"},
                            "inference_stats": {
                                "type": "object",
                                "additionalProperties": _ref("Duration"),
                            },
                            "batch_stats": {"type": "array"},
                        },
                    },
                }
            },
        },
        "RepositoryIndex": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "state"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "state": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    }


def document(server, model_version: str) -> dict:
    """The OpenAPI document for ``server`` (an :class:`~inferops.server.app.InferenceServer`)."""
    name = _param("name", [server.name])
    version = _param("version", [model_version])
    auth = ("401",) if server.config.token else ()
    model_errors = ("400", *auth, "404", "405", "503")
    binary_header = {
        "name": "Inference-Header-Content-Length",
        "in": "header",
        "required": False,
        "schema": {"type": "integer", "minimum": 0},
        "description": "binary-tensor extension: length of the JSON part of the body",
    }
    infer = _op(
        "KServe v2 inference (JSON, or JSON + binary tensors)",
        _responses(
            {
                **_json_content(_ref("InferResponse")),
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
            "400",
            *auth,
            "404",
            "405",
            "413",
            "503",
        ),
        requestBody={
            "required": True,
            "content": {
                **_json_content(_ref("InferRequest"), _example_request(server)),
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        parameters=[binary_header],
    )
    metadata = _op(
        "model metadata", _responses(_json_content(_ref("ModelMetadata")), *model_errors)
    )
    ready = _op("model readiness", _responses(_json_content(_ref("Ready")), "400", "404", "405"))
    config = _op(
        "Triton model configuration", _responses(_json_content(_ref("ModelConfig")), *model_errors)
    )
    stats = _op(
        "Triton statistics", _responses(_json_content(_ref("ModelStats")), *auth, "404", "405")
    )
    health = _op(
        "liveness / readiness",
        _responses(_json_content(_ref("Ready")), "400", "503"),
    )
    paths = {
        "/v2": {
            "get": _op(
                "server metadata",
                _responses(
                    _json_content(
                        {
                            "type": "object",
                            "required": ["name", "version", "extensions"],
                            "properties": {
                                "name": {"type": "string"},
                                "version": {"type": "string"},
                                "extensions": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    )
                ),
            )
        },
        "/v2/health/live": {"get": health},
        "/v2/health/ready": {"get": health},
        "/v2/models/{name}": {"get": {**metadata, "parameters": [name]}},
        "/v2/models/{name}/versions/{version}": {
            "get": {**metadata, "parameters": [name, version]}
        },
        "/v2/models/{name}/ready": {"get": {**ready, "parameters": [name]}},
        "/v2/models/{name}/versions/{version}/ready": {
            "get": {**ready, "parameters": [name, version]}
        },
        "/v2/models/{name}/config": {"get": {**config, "parameters": [name]}},
        "/v2/models/{name}/versions/{version}/config": {
            "get": {**config, "parameters": [name, version]}
        },
        "/v2/models/stats": {"get": stats},
        "/v2/models/{name}/stats": {"get": {**stats, "parameters": [name]}},
        "/v2/models/{name}/versions/{version}/stats": {
            "get": {**stats, "parameters": [name, version]}
        },
        "/v2/models/{name}/infer": {"post": {**infer, "parameters": [name, binary_header]}},
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {**infer, "parameters": [name, version, binary_header]}
        },
        "/v2/repository/index": {
            "post": _op(
                "Triton repository index: the one served model",
                _responses(_json_content(_ref("RepositoryIndex")), "400", *auth, "413"),
                requestBody={
                    "required": False,
                    "content": _json_content(
                        {"type": "object", "properties": {"ready": {"type": "boolean"}}}
                    ),
                },
            )
        },
        "/predict": {
            "post": _op(
                "simple API: {'inputs': ...} -> {'model': ..., 'outputs': ...}",
                _responses(_json_content(_ref("PredictResponse")), "400", *auth, "413", "503"),
                requestBody={
                    "required": True,
                    "content": _json_content(
                        _ref("PredictRequest"),
                        {"inputs": _example_request(server)["inputs"][0]["data"]},
                    ),
                },
            )
        },
        "/health": {"get": health},
        "/live": {"get": health},
        "/ready": {"get": health},
        "/metrics": {
            "get": _op(
                "Prometheus exposition",
                {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
    }
    doc = {
        "openapi": "3.0.3",
        "info": {
            "title": f"inferops serve ({server.name})",
            "version": __version__,
            "description": "KServe v2 / Open Inference Protocol with Triton's binary-tensor, "
            "model-configuration, statistics and repository-index extensions, plus /predict.",
        },
        "paths": paths,
        "components": {"schemas": _schemas(server)},
    }
    if server.config.token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, ops in paths.items():
            if (
                path.startswith(("/v2/models", "/v2/repository", "/predict"))
                and "/ready" not in path
            ):
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
    return doc
