"""Tensors for the tensor protocols: v2 metadata, seeded random inputs, .npy samples."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from urllib.parse import quote

from inferops.exitcodes import UsageError
from inferops.redact import redact_url

_INT_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


class TargetUnreachable(Exception):
    """The target did not answer (or refused) the metadata request."""


def fetch_metadata(target: str, model: str, *, headers: dict, timeout: float = 5.0) -> dict:
    """``GET /v2/models/{model}``; TargetUnreachable when nothing answers."""
    import urllib.error
    import urllib.request

    url = target.rstrip("/") + f"/v2/models/{quote(model, safe='')}"
    get_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    req = urllib.request.Request(url, headers=get_headers)
    url = redact_url(url)  # what messages show: never a password
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            meta = json.loads(resp.read())
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
    if not isinstance(meta, dict):
        raise UsageError(f"{url}: metadata is not a JSON object")
    return meta


def _values(datatype: str, count: int, rng: random.Random) -> list:
    if datatype == "BOOL":
        return [rng.random() < 0.5 for _ in range(count)]
    if datatype in _INT_TYPES:
        return [rng.randint(0, 9) for _ in range(count)]
    return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(count)]


def random_tensors(meta: dict, *, seed: int = 0) -> list[dict]:
    """One v2 tensor per metadata input: seeded values, dynamic dimensions set to 1."""
    inputs = meta.get("inputs")
    if not inputs:
        raise UsageError("model metadata has no inputs; pass --input-file")
    rng = random.Random(seed)
    tensors = []
    for spec in inputs:
        shape = [1 if int(d) < 0 else int(d) for d in spec.get("shape", [])]
        datatype = str(spec.get("datatype", "FP32")).upper()
        data = _values(datatype, math.prod(shape), rng)
        tensors.append({"name": spec["name"], "shape": shape, "datatype": datatype, "data": data})
    return tensors


def _nest(flat: list, shape: list[int]) -> list:
    if len(shape) <= 1:
        return flat
    step = math.prod(shape[1:])
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def nested(t: dict) -> list:
    """A v2 tensor's flat data as a nested list of its shape."""
    return _nest(t["data"], t["shape"])


def numbers(value, where: str):
    """``value`` as a numeric numpy array, or UsageError saying why it cannot be one."""
    import numpy as np

    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise UsageError(f"{where}: not a rectangular array (rows of different lengths?)") from None
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"{where}: holds {arr.dtype} values; inputs must be numbers")
    return arr


def tensor(name: str, value, where: str = "--input-file") -> dict:
    """A v2 tensor from a (nested) list or array of numbers."""
    arr = numbers(value, where)
    datatype = "INT64" if arr.dtype.kind in "iu" else "BOOL" if arr.dtype.kind == "b" else "FP32"
    return {
        "name": name,
        "shape": list(arr.shape),
        "datatype": datatype,
        "data": arr.reshape(-1).tolist(),
    }


def npy_samples(path: str | Path) -> list:
    """Samples on axis 0 of a .npy file, each with a batch dimension of 1 added."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--input-file: no such file: {path}")
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
    arr = numbers(arr, f"--input-file: {path}")
    return [sample[None, ...] for sample in arr]
