"""Model inputs for calibration and comparison: read from a file or generated, always checked.

A *sample set* is ``{input name: array}`` whose arrays share their first axis,
one row per sample (the model's batch dimension). The file formats are those of
``inferops bench --input-file``, so the samples a team load-tests with can
calibrate and judge a profile too:

* ``.npy``: one array, first axis indexing samples, for single-input models;
* ``.npz``: one array per input name;
* ``.jsonl``: one JSON object per line: ``{"<input name>": <nested list>}``, a v2
  request body (``{"inputs": [{"name", "shape", "data"}]}``) or a predict body
  (``{"inputs": <nested list>}``). A line may hold one sample or a batch.

Generated samples are uniform in [-1, 1] (integers 0..9), like the load
generator's, from a seed; calibration and evaluation use different seeds so a
profile is never judged on the data it was calibrated with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferops.exitcodes import UsageError

CALIBRATION_SEED = 1
EVALUATION_SEED = 2
#: Generated sample sets are held in memory; beyond this a typo (--samples 1000000000) is refused.
MAX_GENERATED_BYTES = 1 << 30


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]  # -1 for a dynamic or unknown dimension; shape[0] is the batch

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    def concrete_sample_shape(self) -> tuple[int, ...]:
        if any(d < 0 for d in self.sample_shape):
            raise UsageError(
                f"input {self.name!r} has dynamic dimensions {self.shape}; "
                "generated samples need fixed ones: pass a samples file"
            )
        return self.sample_shape


def input_specs(path: Path) -> list[InputSpec]:
    """The inputs of an ONNX file or an OpenVINO IR (``.xml``); :class:`UsageError` if unreadable."""
    if Path(path).suffix == ".xml":
        return _ir_specs(path)
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf DecodeError and friends
        raise UsageError(f"model {path}: not an ONNX model ({first_line(exc)})") from None
    initializers = {i.name for i in graph.initializer}
    specs = []
    for value in graph.input:
        if value.name in initializers:
            continue  # old exporters list weights as inputs
        tensor = value.type.tensor_type
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        except Exception:
            raise UsageError(f"model {path}: input {value.name!r} is not a tensor") from None
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        specs.append(InputSpec(value.name, dtype, dims))
    if not specs:
        raise UsageError(f"model {path}: has no inputs")
    return specs


def _ir_specs(path: Path) -> list[InputSpec]:
    import xml.etree.ElementTree as ET

    import openvino as ov

    # Checked here first: on a file that is not IR, OpenVINO tries every frontend and
    # its TensorFlow one prints parser errors on stderr from C++.
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise UsageError(f"model {path}: not an OpenVINO IR ({first_line(exc)})") from None
    if root.tag != "net":
        raise UsageError(f"model {path}: not an OpenVINO IR (root element <{root.tag}>, not <net>)")
    if not Path(path).with_suffix(".bin").is_file():
        raise UsageError(
            f"model {path}: its weights {Path(path).with_suffix('.bin').name} are missing"
        )
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:
        raise UsageError(f"model {path}: not an OpenVINO IR ({first_line(exc)})") from None
    specs = []
    for port in model.inputs:
        dims = tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())
        dtype = np.dtype(port.get_element_type().to_dtype())
        specs.append(InputSpec(port.any_name, dtype, dims))
    return specs


def generate(specs: list[InputSpec], count: int, seed: int) -> dict[str, np.ndarray]:
    """``count`` seeded samples per input: uniform in [-1, 1] for floats, 0..9 for integers."""
    if count < 1:
        raise UsageError(f"sample count must be at least 1, got {count}")
    size = count * sum(int(np.prod(s.concrete_sample_shape())) * s.dtype.itemsize for s in specs)
    if size > MAX_GENERATED_BYTES:
        raise UsageError(
            f"{count} generated samples would take {size / 2**20:.0f} MiB; "
            f"the limit is {MAX_GENERATED_BYTES // 2**20} MiB: ask for fewer"
        )
    rng = np.random.RandomState(seed)
    samples = {}
    for spec in specs:
        shape = (count, *spec.concrete_sample_shape())
        if np.issubdtype(spec.dtype, np.integer):
            samples[spec.name] = rng.randint(0, 10, shape).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            samples[spec.name] = rng.random_sample(shape) < 0.5
        else:
            samples[spec.name] = rng.uniform(-1.0, 1.0, shape).astype(spec.dtype)
    return samples


def read(path: Path, specs: list[InputSpec], label: str = "samples") -> dict[str, np.ndarray]:
    """Read and check a ``.npy``/``.npz``/``.jsonl`` file against the model's inputs.

    Every failure (unreadable file, unknown format, a missing input, a wrong
    shape, non-numeric or non-finite values) is a :class:`UsageError` naming
    ``label`` and the file.
    """
    path = Path(path)
    where = f"{label} file {path}"
    if not path.is_file():
        raise UsageError(f"{where}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            raw = {"": np.load(path, allow_pickle=False)}
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                raw = {name: archive[name] for name in archive.files}
        elif suffix == ".jsonl":
            raw = _read_jsonl(path, specs, where)
        else:
            raise UsageError(f"{where}: unknown format {suffix!r}; use .npy, .npz or .jsonl")
    except UsageError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"{where}: unreadable ({first_line(exc)})") from None
    if "" in raw:  # a bare .npy array feeds the only input
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise UsageError(f"{where}: a .npy file feeds one input; the model has {names}")
        raw = {specs[0].name: raw.pop("")}
    return _check(raw, specs, where)


def _read_jsonl(path: Path, specs: list[InputSpec], where: str) -> dict[str, np.ndarray]:
    rows: dict[str, list[np.ndarray]] = {s.name: [] for s in specs}
    by_name = {s.name: s for s in specs}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{where}: line {lineno}: not JSON ({exc.msg})") from None
            for name, value in _line_tensors(obj, specs, where, lineno).items():
                if name not in by_name:
                    raise UsageError(f"{where}: line {lineno}: the model has no input {name!r}")
                array = _as_array(value, by_name[name], f"{where}: line {lineno}")
                if array.ndim == len(by_name[name].sample_shape):
                    array = array[np.newaxis]  # one sample without its batch dimension
                rows[name].append(array)
    missing = [name for name, arrays in rows.items() if not arrays]
    if missing:
        raise UsageError(f"{where}: no samples for input {missing[0]!r}")
    try:
        return {name: np.concatenate(arrays) for name, arrays in rows.items()}
    except ValueError:
        raise UsageError(f"{where}: lines disagree on the sample shape") from None


def _line_tensors(obj, specs: list[InputSpec], where: str, lineno: int) -> dict:
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: line {lineno}: expected a JSON object")
    inputs = obj.get("inputs") if "inputs" in obj else None
    if inputs is None:
        return obj
    if isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs):
        tensors = {}
        for t in inputs:  # v2: flat data + shape
            try:
                tensors[t["name"]] = np.asarray(t["data"]).reshape([int(d) for d in t["shape"]])
            except (KeyError, TypeError, ValueError):
                raise UsageError(
                    f"{where}: line {lineno}: v2 input needs name, shape and matching data"
                ) from None
        return tensors
    if len(specs) != 1:
        raise UsageError(f"{where}: line {lineno}: a predict body feeds one input only")
    return {specs[0].name: inputs}


def _as_array(value, spec: InputSpec, where: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=spec.dtype)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: input {spec.name!r} is not a numeric array") from None


def _check(raw: dict[str, np.ndarray], specs: list[InputSpec], where: str) -> dict[str, np.ndarray]:
    samples = {}
    for spec in specs:
        if spec.name not in raw:
            raise UsageError(f"{where}: no array for input {spec.name!r}")
        array = raw[spec.name]
        if array.dtype.kind not in "biuf":
            raise UsageError(f"{where}: input {spec.name!r} has {array.dtype} values, not numbers")
        expected = spec.sample_shape
        got = array.shape[1:]
        if array.ndim != len(expected) + 1 or any(
            e >= 0 and e != g for e, g in zip(expected, got, strict=True)
        ):
            want = "x".join("?" if d < 0 else str(d) for d in expected)
            raise UsageError(
                f"{where}: input {spec.name!r} samples have shape {'x'.join(map(str, got)) or '()'}"
                f" (array {'x'.join(map(str, array.shape))}), the model expects N x {want}"
            )
        if array.shape[0] == 0:
            raise UsageError(f"{where}: holds no samples")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UsageError(f"{where}: input {spec.name!r} has NaN or infinite values")
        samples[spec.name] = np.ascontiguousarray(array.astype(spec.dtype, copy=False))
    counts = {len(a) for a in samples.values()}
    if len(counts) != 1:
        raise UsageError(f"{where}: inputs have different sample counts {sorted(counts)}")
    return samples


def count(samples: dict[str, np.ndarray]) -> int:
    return len(next(iter(samples.values())))


def digest(samples: dict[str, np.ndarray]) -> str:
    """sha256 of a sample set: names, dtypes, shapes and bytes, independent of the file format."""
    h = hashlib.sha256()
    for name in sorted(samples):
        array = np.ascontiguousarray(samples[name])
        h.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def batches(samples: dict[str, np.ndarray], size: int):
    """Yield feeds of at most ``size`` consecutive samples."""
    total = count(samples)
    for start in range(0, total, size):
        yield {name: array[start : start + size] for name, array in samples.items()}


def first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from ")]
    return ((useful or lines or [type(exc).__name__])[0])[:200]
