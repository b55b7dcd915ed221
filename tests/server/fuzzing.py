"""Hypothesis profiles and request strategies shared by the server's fuzz tests.

Two profiles, applied per test (never loaded globally, so other suites keep their settings):

* ``inferops-ci`` (default): derandomized, so CI runs the same examples every time;
* ``inferops-fuzz``: random, ten times the examples, failures saved in ``.hypothesis/``.
  ``make fuzz`` selects it with ``INFEROPS_FUZZ_PROFILE=inferops-fuzz``.

The strategies start from a valid request for the embedded ``mlp`` model and
break one or more fields at a time, with sizes at the edges (0, -1, 64/65
dimensions, 2**31, 2**62, 2**63 ...), so examples get past the first check
instead of all stopping at "not valid JSON".
"""

from __future__ import annotations

import json
import math
import os
import struct

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

settings.register_profile(
    "inferops-ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "inferops-fuzz",
    derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/inferops-fuzz"),
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("INFEROPS_FUZZ_PROFILE", "inferops-ci"))


def scaled(factor: float) -> settings:
    """The active profile with ``factor`` times its examples (cheap tests run more)."""
    return settings(PROFILE, max_examples=max(10, int(PROFILE.max_examples * factor)))


def dumps(doc) -> bytes:
    # stdlib json: unlike orjson it writes integers beyond 64 bits, one more thing to survive.
    return json.dumps(doc).encode()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
#: Integers at the edges of every size check (and of int64/uint64).
EDGE_INTS = st.sampled_from(
    [0, 1, 2, 63, 64, 65, -1, -2, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, -(2**63), 2**64 - 1]
) | st.integers(-3, 130)
DATATYPES = (
    st.sampled_from(
        [
            "FP32",
            "FP32",
            "FP32",
            "FP16",
            "FP64",
            "INT64",
            "INT8",
            "UINT8",
            "BOOL",
            "BYTES",
            "fp32",
            "",
        ]
    )
    | JSON
)
#: Shapes: the right one, wrong ranks (0 to 70 dimensions), edge dimensions, junk.
RANK_EDGES = st.builds(
    lambda rank, dim: [dim] * rank,
    st.sampled_from([0, 1, 3, 63, 64, 65, 70]),
    st.sampled_from([0, 1, 1, 2, 2**31, 2**62]),
)
#: No elements, yet a size NumPy cannot compute: [0, 2**62, 2**62].
ZERO_TIMES_HUGE = st.builds(
    lambda rank, big: [0] + [big] * rank, st.integers(1, 3), st.sampled_from([2**31, 2**62])
)
SHAPES = st.one_of(
    st.builds(lambda n: [n, 64], EDGE_INTS),
    RANK_EDGES,
    RANK_EDGES,
    ZERO_TIMES_HUGE,
    st.lists(EDGE_INTS, min_size=3, max_size=3),
    st.lists(EDGE_INTS, max_size=70),
    st.lists(EDGE_INTS | st.booleans() | st.floats() | st.text(max_size=3), max_size=4),
    JSON,
)
NUMBERS = st.one_of(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70),
    st.booleans(),
)


def nested(value, depth: int):
    for _ in range(depth):
        value = [value]
    return value


def _values(count: int):
    """Data for ``count`` values: exactly right, one off, or of a wrong kind."""
    exact = min(max(count, 0), 4096)
    return st.one_of(
        st.builds(lambda v: [v] * exact, st.floats(-10, 10, width=32) | NUMBERS),
        st.lists(NUMBERS, min_size=max(exact - 1, 0), max_size=exact + 1),
        st.builds(nested, st.floats(-1, 1, width=32), st.integers(0, 200)),
        st.lists(st.lists(NUMBERS, max_size=65), max_size=3),
        st.lists(st.text(max_size=4), max_size=3),
        JSON,
    )


#: Fields a generated request may break; the others stay valid, so checks deep inside run.
#: (Repeats weight the fields whose checks are deepest.)
INPUT_FIELDS = ["name", "datatype", "parameters", "blob", "drop"] + ["shape"] * 4
INPUT_FIELDS += ["data", "binary_size"] * 2
REQUEST_FIELDS = ["inputs", "id", "outputs", "parameters", "header_length", "path"]


def _broken(fields: list[str]):
    """Which fields to break: none a third of the time, else one or two."""
    return st.one_of(
        st.just(frozenset()), st.frozensets(st.sampled_from(fields), min_size=1, max_size=2)
    )


@st.composite
def v2_input(draw, blobs: list):
    """One entry of ``inputs`` for the mlp model; binary tensors append their bytes to ``blobs``."""
    broken = draw(_broken(INPUT_FIELDS))
    rows = draw(st.integers(1, 8))
    item: dict = {"name": "input", "datatype": "FP32", "shape": [rows, 64]}
    if "name" in broken:
        item["name"] = draw(st.sampled_from(["logits", "x", "", "INPUT"]) | JSON)
    if "datatype" in broken:
        item["datatype"] = draw(DATATYPES)
    if "shape" in broken:
        item["shape"] = draw(SHAPES)
    shape = item["shape"]
    ints = isinstance(shape, list) and all(type(d) is int for d in shape)
    count = math.prod(shape) if ints else rows * 64
    count = count if 0 <= count <= 4096 else rows * 64
    if draw(st.booleans()):  # binary tensor
        size = count * 4
        if "binary_size" in broken:
            size = draw(st.sampled_from([size - 1, size + 4, -size]) | EDGE_INTS | JSON)
        item["parameters"] = {"binary_data_size": size}
        blob_size = size if isinstance(size, int) and not isinstance(size, bool) else 0
        if "blob" in broken:
            blob_size = draw(st.sampled_from([blob_size - 1, blob_size + 1, 0]))
        values = draw(st.floats(-1, 1, width=32))
        blobs.append(struct.pack("<f", values) * max(0, min(blob_size, 1 << 16) // 4))
        blobs[-1] += b"\x00" * (max(0, min(blob_size, 1 << 16)) % 4)
    elif "data" in broken:
        item["data"] = draw(_values(count))
    else:
        value = draw(st.floats(-10, 10, width=32))
        nested = "shape" not in broken and draw(st.booleans())
        item["data"] = [[value] * 64] * rows if nested else [value] * count
    if "parameters" in broken:
        item["parameters"] = draw(JSON | st.just([1, 2]) | st.just("binary"))
    if "drop" in broken:
        item.pop(draw(st.sampled_from(sorted(item))))
    return item


@st.composite
def v2_request(draw) -> tuple[bytes, dict]:
    """A whole v2 body and its headers for mlp: JSON or JSON + binary tensors."""
    broken = draw(_broken(REQUEST_FIELDS))
    blobs: list[bytes] = []
    doc: dict = {"inputs": draw(st.lists(v2_input(blobs), min_size=1, max_size=1))}
    if "inputs" in broken:
        doc["inputs"] = draw(st.lists(v2_input(blobs), min_size=0, max_size=3) | JSON)
    if draw(st.booleans()):
        doc["id"] = draw(st.text(max_size=8))
    if "id" in broken:
        doc["id"] = draw(JSON)
    if draw(st.booleans()):
        doc["outputs"] = [{"name": "logits", "parameters": {"binary_data": draw(st.booleans())}}]
    if "outputs" in broken:
        doc["outputs"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["logits", "nope"]) | JSON},
                    optional={"parameters": st.dictionaries(st.just("binary_data"), JSON) | JSON},
                ),
                max_size=2,
            )
            | JSON
        )
    if draw(st.booleans()):
        doc["parameters"] = {"binary_data_output": draw(st.booleans())}
    if "parameters" in broken:
        doc["parameters"] = draw(st.dictionaries(st.just("binary_data_output"), JSON) | JSON)
    header = dumps(doc)
    body = header + b"".join(blobs)
    headers: dict[str, str] = {}
    if blobs or "header_length" in broken:
        headers["inference-header-content-length"] = str(len(header))
        headers["content-type"] = "application/octet-stream"
    if "header_length" in broken:
        headers["inference-header-content-length"] = draw(
            st.sampled_from(["", "abc", "-1", "+5", " 5", "1_0", "0x10"])
            | st.sampled_from([len(header) - 1, len(header) + 1, 0, len(body), len(body) + 1]).map(
                str
            )
            | EDGE_INTS.map(str)
        )
    path = "/v2/models/mlp/infer"
    if "path" in broken:
        path = draw(st.sampled_from(["/v2/models/mlp/versions/1/infer", "/v2/models/other/infer"]))
    return body, headers, path


def deep_body(depth: int, width: int) -> bytes:
    """A v2 body whose data is ``width`` zeros nested ``depth`` deep (no recursion to build)."""
    data = b"[" * depth + b",".join([b"0.0"] * width) + b"]" * depth
    return b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,64],"data":' + data + b"}]}"


@st.composite
def predict_body(draw) -> bytes:
    """``/predict`` bodies: sample shapes at the edges, wrong kinds, deep nesting, junk."""
    choice = draw(st.sampled_from(["valid", "valid", "shaped", "named", "deep", "json", "raw"]))
    if choice == "valid":  # for mlp: one sample, or rows of samples, maybe one value off
        width = draw(st.sampled_from([64, 64, 64, 63, 65, 0]))
        sample = [draw(st.floats(-10, 10, width=32))] * width
        rows = draw(st.integers(0, 9))
        return dumps({"inputs": [sample] * rows if rows else sample})
    if choice == "shaped":
        shape = draw(st.lists(st.integers(0, 66), max_size=4).filter(lambda s: math.prod(s) < 5000))
        values = st.floats(-1, 1, width=32) | NUMBERS
        data = draw(st.builds(_filled, st.just(shape), values))
        return dumps({"inputs": data})
    if choice == "named":
        return dumps(
            {"inputs": draw(st.dictionaries(st.sampled_from(["input", "x", ""]), _values(64)))}
        )
    if choice == "deep":
        depth = draw(st.integers(60, 1100))
        return b'{"inputs":' + b"[" * depth + b"0" + b"]" * depth + b"}"
    if choice == "json":
        return dumps(draw(st.fixed_dictionaries({}, optional={"inputs": JSON}) | JSON))
    return draw(st.binary(max_size=300))


def _filled(shape: list[int], value):
    if not shape:
        return value
    return [_filled(shape[1:], value) for _ in range(shape[0])]
