"""Request parsing and response encoding: KServe v2 JSON, its binary-tensor extension, /predict.

Parsing is strict and cheap: a flat ``data`` list goes through one
``np.asarray`` call, binary tensors are zero-copy ``np.frombuffer`` views, and
every problem raises :class:`BadRequest` with a message naming it (-> HTTP 400).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import orjson

from inferops.server.tensors import NUMPY_TO_V2, V2_TO_NUMPY, TensorSpec

#: Triton's header giving the length of the JSON part of a binary-extension body.
HEADER_LENGTH = "inference-header-content-length"
BINARY_CONTENT_TYPE = "application/octet-stream"


#: Largest element count a request's shape may declare (zero dimensions counted as one).
#: Far above any body limit, far below what overflows NumPy's size arithmetic.
MAX_ELEMENTS = 2**32

_DIGITS = re.compile(r"[0-9]{1,18}")


class BadRequest(Exception):
    """The request is malformed; the message names the problem (HTTP 400)."""


@dataclass
class InferRequest:
    """A parsed inference request: one array per model input, plus output choices."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[str] | None = None  # None = every model output
    binary: set[str] = field(default_factory=set)  # outputs to return as binary


def load_json(data: bytes | memoryview):
    try:
        return orjson.loads(data)
    except (orjson.JSONDecodeError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{what} must be an integer, got {value!r:.40}")
    return value


def _params(value, what: str) -> dict:
    """A ``parameters`` object: absent/null means none; anything but an object is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object, got {type(value).__name__}")
    return value


def _flag(params: dict, key: str, where: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}.{key} must be true or false, got {value!r:.40}")
    return value


def _declared_shape(shape, spec: TensorSpec) -> list[int]:
    """Check a request's ``shape`` against the model before any data is touched.

    Rank and fixed dimensions must match the model; no dimension may be negative,
    and the element count (zero dimensions counted as one) must stay below
    :data:`MAX_ELEMENTS`, so no later ``reshape`` or allocation can fail on it.
    """
    name = spec.name
    if not isinstance(shape, list):
        raise BadRequest(f"input {name!r}: 'shape' must be a list of integers")
    if len(shape) != len(spec.shape):
        raise BadRequest(
            f"input {name!r}: expected {len(spec.shape)} dimensions {list(spec.shape)}, "
            f"got {len(shape)}"
        )
    dims = [_int(d, f"input {name!r}: shape dimension") for d in shape]
    if any(d < 0 for d in dims):
        raise BadRequest(f"input {name!r}: shape dimensions must be >= 0, got {dims}")
    if math.prod(max(d, 1) for d in dims) > MAX_ELEMENTS:
        raise BadRequest(
            f"input {name!r}: shape {dims} is over {MAX_ELEMENTS} elements; no request can be"
        )
    problem = spec.check_shape(tuple(dims))
    if problem:
        raise BadRequest(problem)
    return dims


def _numeric_array(data, dtype: np.dtype, what: str) -> np.ndarray:
    """Convert JSON numbers (flat or nested lists) to ``dtype``, refusing anything else."""
    if not isinstance(data, list):
        raise BadRequest(f"{what}: data must be a list of numbers")
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{what}: data must be a rectangular list of numbers") from None
    if raw.size == 0 and raw.dtype == np.float64:
        raw = raw.astype(dtype)  # [] has no element type to check
    kind = raw.dtype.kind
    if dtype.kind == "b":
        ok = kind == "b"
    elif dtype.kind in "iu":
        ok = kind in "iu"
        if ok and raw.size:
            info = np.iinfo(dtype)
            ok = info.min <= raw.min() and raw.max() <= info.max
    else:
        ok = kind in "iuf"
    if not ok:
        raise BadRequest(f"{what}: data holds values that are not {NUMPY_TO_V2[dtype]}")
    return raw.astype(dtype, copy=False)


def parse_v2(
    body: bytes,
    header_length: str | None,
    inputs: dict[str, TensorSpec],
    outputs: dict[str, TensorSpec],
) -> InferRequest:
    """Parse a v2 ``/infer`` body, JSON or JSON + binary tensors (Triton's extension)."""
    binary = memoryview(b"")
    if header_length is not None:
        if not _DIGITS.fullmatch(header_length):
            raise BadRequest("Inference-Header-Content-Length must be a non-negative integer")
        n = int(header_length)
        if not 0 <= n <= len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)"
            )
        view = memoryview(body)
        header, binary = view[:n], view[n:]
    else:
        header = body
    doc = load_json(header)
    if not isinstance(doc, dict):
        raise BadRequest("request body must be a JSON object")
    req_id = doc.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise BadRequest("id must be a string")
    items = doc.get("inputs")
    if not isinstance(items, list) or not items:
        raise BadRequest("'inputs' must be a non-empty list")

    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"inputs[{i}] must be an object")
        name = item.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}]: 'name' must be a string")
        spec = inputs.get(name)
        if spec is None:
            raise BadRequest(f"unknown input {name!r:.60}; the model takes {sorted(inputs)}")
        if name in arrays:
            raise BadRequest(f"input {name!r} given twice")
        datatype = item.get("datatype")
        if datatype != spec.datatype:
            raise BadRequest(
                f"input {name!r}: datatype must be {spec.datatype}, got {datatype!r:.40}"
            )
        shape = _declared_shape(item.get("shape"), spec)
        count = math.prod(shape)
        params = _params(item.get("parameters"), f"input {name!r}: 'parameters'")
        if "binary_data_size" in params:
            size = _int(params["binary_data_size"], f"input {name!r}: binary_data_size")
            if size != count * spec.dtype.itemsize:
                raise BadRequest(
                    f"input {name!r}: binary_data_size {size} does not match "
                    f"shape {shape} of {spec.datatype} "
                    f"({count * spec.dtype.itemsize} bytes)"
                )
            if offset + size > len(binary):
                raise BadRequest(f"input {name!r}: binary data runs past the end of the body")
            chunk = binary[offset : offset + size]
            offset += size
            array = np.frombuffer(chunk, dtype=spec.dtype.newbyteorder("<"))
        else:
            if "data" not in item:
                raise BadRequest(f"input {name!r}: needs 'data' or binary_data_size")
            array = _numeric_array(item["data"], spec.dtype, f"input {name!r}")
            if array.size != count:
                raise BadRequest(
                    f"input {name!r}: shape {shape} needs {count} values, got {array.size}"
                )
        arrays[name] = array.reshape(shape)  # safe: shape checked, ``count`` values held
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary) - offset} bytes of binary data are not claimed by any "
            "input's binary_data_size"
        )
    missing = sorted(set(inputs) - set(arrays))
    if missing:
        raise BadRequest(f"missing input(s) {missing}")
    _check_batch(arrays, inputs)

    request = InferRequest(arrays, id=req_id)
    params = _params(doc.get("parameters"), "'parameters'")
    all_binary = _flag(params, "binary_data_output", "parameters")
    wanted = doc.get("outputs")
    if wanted is not None and not isinstance(wanted, list):
        raise BadRequest("'outputs' must be a list")
    if wanted:  # absent, null or [] all mean every output, as in the v2 protocol
        request.outputs = []
        for i, out in enumerate(wanted):
            name = out.get("name") if isinstance(out, dict) else None
            if not isinstance(name, str) or name not in outputs:
                raise BadRequest(
                    f"outputs[{i}]: unknown output {name!r:.60}; the model has {sorted(outputs)}"
                )
            request.outputs.append(name)
            out_params = _params(out.get("parameters"), f"outputs[{i}].parameters")
            if _flag(out_params, "binary_data", f"outputs[{i}].parameters"):
                request.binary.add(name)
    if all_binary:
        request.binary.update(request.outputs or outputs)
    return request


def _check_batch(arrays: dict[str, np.ndarray], inputs: dict[str, TensorSpec]) -> None:
    batches = {len(a) for n, a in arrays.items() if inputs[n].batched}
    if len(batches) > 1:
        raise BadRequest(f"inputs disagree on the batch size: {sorted(batches)}")


def parse_predict(body: bytes, inputs: dict[str, TensorSpec]) -> dict[str, np.ndarray]:
    """Parse the simple API: ``{"inputs": <nested or flat list>}`` or ``{"inputs": {name: list}}``.

    A single sample without the batch dimension, or a flat list of whole
    samples, is reshaped to the model's input shape.
    """
    doc = load_json(body)
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise BadRequest("request body must be a JSON object with 'inputs'")
    given = doc["inputs"]
    if isinstance(given, dict):
        named = given
    elif len(inputs) == 1:
        named = {next(iter(inputs)): given}
    else:
        raise BadRequest(
            f"the model takes several inputs {sorted(inputs)}; "
            "send 'inputs' as an object keyed by input name"
        )
    arrays = {}
    for name, data in named.items():
        spec = inputs.get(name)
        if spec is None:
            raise BadRequest(f"unknown input {name!r:.60}; the model takes {sorted(inputs)}")
        array = _numeric_array(data, spec.dtype, f"input {name!r}")
        arrays[name] = _fit(array, spec)
    missing = sorted(set(inputs) - set(arrays))
    if missing:
        raise BadRequest(f"missing input(s) {missing}")
    _check_batch(arrays, inputs)
    return arrays


def _fit(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    rank = len(spec.shape)
    sample = spec.shape[1:]
    if spec.batched and array.ndim == rank - 1 and rank > 1:
        array = array[np.newaxis]  # one sample without its batch dimension
    elif spec.batched and array.ndim == 1 and rank > 2 and -1 not in sample:
        per = math.prod(sample)
        if per == 0 or array.size == 0 or array.size % per:
            raise BadRequest(
                f"input {spec.name!r}: {array.size} values are not a whole number "
                f"of samples of shape {list(sample)}"
            )
        array = array.reshape(-1, *sample)
    problem = spec.check(array)
    if problem:
        raise BadRequest(problem)
    return array


def encode_v2(
    model: str, version: str, request: InferRequest, results: dict[str, np.ndarray]
) -> tuple[bytes, dict[str, str]]:
    """Encode a v2 response; outputs asked for as binary go after the JSON header."""
    names = request.outputs if request.outputs is not None else list(results)
    outs, blobs = [], []
    for name in names:
        array = np.ascontiguousarray(results[name])
        entry = {"name": name, "datatype": NUMPY_TO_V2[array.dtype], "shape": list(array.shape)}
        if name in request.binary:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1)
        outs.append(entry)
    doc = {"model_name": model, "model_version": version, "outputs": outs}
    if request.id is not None:
        doc["id"] = request.id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {"content-type": "application/json"}
    return b"".join([header, *blobs]), {
        "content-type": BINARY_CONTENT_TYPE,
        HEADER_LENGTH: str(len(header)),
    }


def decode_v2_response(body: bytes, header_length: str | None) -> dict[str, np.ndarray]:
    """Client side: turn a v2 response (JSON or binary) into ``{output name: array}``."""
    n = int(header_length) if header_length is not None else len(body)
    doc = orjson.loads(body[:n])
    out, offset = {}, n
    for entry in doc["outputs"]:
        dtype = V2_TO_NUMPY[entry["datatype"]]
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            data = np.frombuffer(body[offset : offset + size], dtype=dtype.newbyteorder("<"))
            offset += size
        else:
            data = np.asarray(entry["data"], dtype=dtype)
        out[entry["name"]] = data.reshape(entry["shape"])
    return out


def encode_v2_request(
    inputs: dict[str, np.ndarray],
    *,
    binary: bool = True,
    binary_output: bool = True,
    id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Client side: build a v2 request body and headers (binary tensors by default)."""
    items, blobs = [], []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        entry = {"name": name, "datatype": NUMPY_TO_V2[array.dtype], "shape": list(array.shape)}
        if binary:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1)
        items.append(entry)
    doc: dict = {"inputs": items}
    if id is not None:
        doc["id"] = id
    if binary_output:
        doc["parameters"] = {"binary_data_output": True}
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {"content-type": "application/json"}
    return b"".join([header, *blobs]), {
        "content-type": BINARY_CONTENT_TYPE,
        HEADER_LENGTH: str(len(header)),
    }
