"""Request bodies for the two protocols, from model metadata or a file of samples.

* ``v2`` (KServe v2 / Open Inference Protocol): ``POST /v2/models/{model}/infer``
  with ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` (flat ``data``).
* ``predict`` (the simple API): ``POST /predict`` with ``{"inputs": <nested list>}``.

Without ``--input-file`` the inputs are generated from the model's v2 metadata
(``GET /v2/models/{model}``): every input gets seeded random values of its
datatype and shape, with the dynamic batch dimension (-1) set to 1.

``--input-file`` gives real samples instead, cycled in order:

* ``.jsonl``: one JSON object per line, either a complete request body for the
  chosen protocol (it has an ``"inputs"`` key) or ``{"<input name>": <nested list>}``;
* ``.npy``: an array whose first axis indexes samples; each sample becomes the
  single input (batch dimension 1 is added).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from urllib.parse import quote

from inferops.exitcodes import UsageError
from inferops.redact import redact_url

PROTOCOLS = ("v2", "predict")

_INT_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


class TargetUnreachable(Exception):
    """The target did not answer (or refused) the metadata request."""


def infer_path(protocol: str, model: str | None) -> str:
    if protocol == "predict":
        return "/predict"
    if not model:
        raise UsageError("--model is required with --protocol v2")
    return f"/v2/models/{quote(model, safe='')}/infer"


def _values(datatype: str, count: int, rng: random.Random) -> list:
    if datatype == "BOOL":
        return [rng.random() < 0.5 for _ in range(count)]
    if datatype in _INT_TYPES:
        return [rng.randint(0, 9) for _ in range(count)]
    return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(count)]


def _nest(flat: list, shape: list[int]) -> list:
    if len(shape) <= 1:
        return flat
    step = math.prod(shape[1:])
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def bodies_from_metadata(meta: dict, protocol: str, *, seed: int = 0) -> list[bytes]:
    """One request body generated from v2 model metadata."""
    inputs = meta.get("inputs") if isinstance(meta, dict) else None
    if not inputs:
        raise UsageError("model metadata has no inputs; pass --input-file")
    rng = random.Random(seed)
    tensors = []
    for spec in inputs:
        shape = [1 if int(d) < 0 else int(d) for d in spec.get("shape", [])]
        datatype = str(spec.get("datatype", "FP32")).upper()
        data = _values(datatype, math.prod(shape), rng)
        tensors.append({"name": spec["name"], "shape": shape, "datatype": datatype, "data": data})
    if protocol == "v2":
        return [json.dumps({"inputs": tensors}).encode()]
    if len(tensors) != 1:
        raise UsageError("--protocol predict supports single-input models only")
    return [json.dumps({"inputs": _nest(tensors[0]["data"], tensors[0]["shape"])}).encode()]


def _numbers(value, where: str):
    """``value`` as a numeric numpy array, or UsageError saying why it cannot be one."""
    import numpy as np

    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise UsageError(f"{where}: not a rectangular array (rows of different lengths?)") from None
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"{where}: holds {arr.dtype} values; inputs must be numbers")
    return arr


def _tensor(name: str, value, where: str = "--input-file") -> dict:
    arr = _numbers(value, where)
    datatype = "INT64" if arr.dtype.kind in "iu" else "BOOL" if arr.dtype.kind == "b" else "FP32"
    return {
        "name": name,
        "shape": list(arr.shape),
        "datatype": datatype,
        "data": arr.reshape(-1).tolist(),
    }


def bodies_from_file(path: str | Path, protocol: str, meta: dict | None = None) -> list[bytes]:
    """Request bodies from a ``.jsonl`` or ``.npy`` file of samples (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--input-file: no such file: {path}")
    names = [i["name"] for i in (meta or {}).get("inputs", [])] or ["input"]
    bodies: list[bytes] = []
    if path.suffix == ".npy":
        arr = _load_npy(path)
        for sample in arr:
            batch = sample[None, ...]
            if protocol == "v2":
                bodies.append(json.dumps({"inputs": [_tensor(names[0], batch)]}).encode())
            else:
                bodies.append(json.dumps({"inputs": batch.tolist()}).encode())
        return bodies
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        where = f"--input-file: {path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{where}: expected a JSON object")
        if "inputs" not in obj:  # {"input name": nested list}
            if protocol == "v2":
                obj = {"inputs": [_tensor(k, v, where) for k, v in obj.items()]}
            elif len(obj) == 1:
                obj = {"inputs": _numbers(next(iter(obj.values())), where).tolist()}
            else:
                raise UsageError(f"{where}: predict takes one input")
        bodies.append(json.dumps(obj).encode())
    if not bodies:
        raise UsageError(f"--input-file: {path}: no samples")
    return bodies


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--input-file: {path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"--input-file: {path}:{line}: not UTF-8 text") from None


def _load_npy(path: Path):
    """A numeric array with at least one sample on axis 0, or UsageError."""
    import zipfile

    import numpy as np

    if zipfile.is_zipfile(path):
        raise UsageError(f"--input-file: {path}: an .npz archive, not a .npy array")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise UsageError(f"--input-file: {path}: not a valid .npy file: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise UsageError(f"--input-file: {path}: not a .npy array")
    if arr.ndim < 1 or len(arr) == 0:
        raise UsageError(f"--input-file: {path}: needs at least one sample on axis 0")
    return _numbers(arr, f"--input-file: {path}")


def fetch_metadata(
    target: str, model: str, *, token: str | None = None, timeout: float = 5.0
) -> dict:
    """``GET /v2/models/{model}``; TargetUnreachable when nothing answers."""
    import urllib.error
    import urllib.request

    url = target.rstrip("/") + f"/v2/models/{quote(model, safe='')}"
    req = urllib.request.Request(url, headers=auth_headers(token))
    url = redact_url(url)  # what messages show: never a password
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise UsageError(f"{url}: HTTP {exc.code}: the server wants a valid --token") from None
        if exc.code == 404:
            raise UsageError(f"{url}: model {model!r} not found on the target") from None
        raise TargetUnreachable(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TargetUnreachable(f"{url}: {reason}") from None
    except json.JSONDecodeError:
        raise UsageError(f"{url}: metadata is not JSON") from None


def auth_headers(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def load_bodies(
    target: str,
    protocol: str,
    model: str | None,
    *,
    token: str | None = None,
    input_file: str | None = None,
) -> list[bytes]:
    """Request bodies for a run; fetches metadata when it is needed."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol: expected v2 or predict, got {protocol!r}")
    meta = fetch_metadata(target, model, token=token) if model else None
    if input_file:
        return bodies_from_file(input_file, protocol, meta)
    if meta is None:
        raise UsageError("--model (for its metadata) or --input-file is required")
    return bodies_from_metadata(meta, protocol)
