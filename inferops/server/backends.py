"""Inference engines behind the server: ONNX Runtime (default) and OpenVINO.

A backend loads one ``.onnx`` file and exposes ``inputs``/``outputs`` as
:class:`TensorSpec` lists and ``run(feeds) -> {output name: array}``. ``run`` is
called from one worker thread at a time; both engines release the GIL inside.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from inferops.exitcodes import UsageError
from inferops.server.tensors import TensorSpec

BACKENDS = ("onnxruntime", "openvino")

#: Execution providers in order of preference; the CPU one is always last.
PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)

_ORT_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
}
_OV_TYPES = {
    "f32": "FP32",
    "f64": "FP64",
    "f16": "FP16",
    "i8": "INT8",
    "i16": "INT16",
    "i32": "INT32",
    "i64": "INT64",
    "u8": "UINT8",
    "u16": "UINT16",
    "u32": "UINT32",
    "u64": "UINT64",
    "boolean": "BOOL",
}


def select_providers(available: list[str] | tuple[str, ...]) -> list[str]:
    """Pick ONNX Runtime execution providers: TensorRT, then CUDA, when present; CPU always.

    ``available`` is ``onnxruntime.get_available_providers()``; the result keeps
    the preference order so ORT falls back from one to the next per node.
    """
    chosen = [p for p in PROVIDER_PREFERENCE if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def default_threads() -> int:
    """Intra-op threads: one per CPU this process may use: the CPUs it may run on (taskset,
    cpusets), fewer under a CPU quota (a container's CPU limit, systemd's CPUQuota=): two
    threads sharing a quarter of a core only wait on each other."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_limit(
    proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup"
) -> float | None:
    """CPUs per period this process's cgroup may use (CFS quota / period), the tightest of
    its cgroup and the ancestors it can see; None when unlimited or unreadable.

    cgroup v2: ``cpu.max`` ("25000 100000", or "max 100000"); v1: ``cpu.cfs_quota_us``
    (-1: unlimited) over ``cpu.cfs_period_us`` in the ``cpu`` controller's hierarchy.
    """
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2 unified hierarchy
            base, files = Path(root), ("cpu.max",)
        elif "cpu" in controllers.split(","):
            base = next((Path(root) / d for d in (controllers, "cpu,cpuacct", "cpu")
                         if (Path(root) / d).is_dir()), None)  # fmt: skip
            if base is None:
                continue
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        here = base / path.lstrip("/")
        while True:
            limit = _read_cpu_limit(here, files)
            if limit is not None:
                limits.append(limit)
            if here == base or base not in here.parents:
                break
            here = here.parent
    return min(limits) if limits else None


def _read_cpu_limit(folder: Path, files: tuple[str, ...]) -> float | None:
    try:
        if len(files) == 1:
            quota, period = (folder / files[0]).read_text().split()
        else:
            quota, period = ((folder / f).read_text().strip() for f in files)
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _dims(shape) -> tuple[int, ...]:
    # Symbolic (str), unknown (None) and OpenVINO's dynamic (-1) dims all become -1.
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


class OnnxRuntimeBackend:
    """ONNX Runtime session; GPU execution providers are used when this ORT build has them."""

    platform = "onnxruntime_onnx"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        providers: list[str] | None = None,
        spinning: bool = False,
    ):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        # ORT's intra-op workers spin after each run, waiting for the next (its default):
        # on a server they burn the CPU the HTTP side needs, and under a CPU quota they burn
        # the quota itself (8.5 CPU-seconds in 10 s at 40 req/s, two threads; docs/server.md)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.providers = providers or select_providers(ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=self.providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise UsageError(
                f"model {path}: not a loadable ONNX model ({_first_line(exc)})"
            ) from None
        self.inputs = [self._spec(i) for i in self.session.get_inputs()]
        self.outputs = [self._spec(o) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        self.device = self.session.get_providers()[0]
        # the model's metadata_props, already parsed by ORT (server/faults.py reads them)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    @staticmethod
    def _spec(arg) -> TensorSpec:
        datatype = _ORT_TYPES.get(arg.type)
        if datatype is None:
            raise UsageError(
                f"model tensor {arg.name!r} has type {arg.type}, which this server does not serve"
            )
        return TensorSpec(arg.name, datatype, _dims(arg.shape))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, results, strict=True))


class OpenVinoBackend:
    """OpenVINO on CPU, with fp32 precision by default (it would pick bf16 on AMX/AVX512 CPUs)."""

    platform = "openvino"

    def __init__(self, path: Path, threads: int | None = None, precision: str = "f32"):
        import openvino as ov

        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads or default_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        try:
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for bad files
            raise UsageError(
                f"model {path}: not a loadable ONNX model ({_first_line(exc)})"
            ) from None
        # OpenVINO folds Identity nodes, leaving a port several names; use the graph's own.
        names = _graph_io_names(path)
        self.inputs = [self._spec(p, names[0]) for p in self.compiled.inputs]
        self.outputs = [self._spec(p, names[1]) for p in self.compiled.outputs]
        self._request = self.compiled.create_infer_request()
        self.providers = ["CPU"]
        self.device = "CPU"

    @staticmethod
    def _spec(port, graph_names: set[str]) -> TensorSpec:
        own = sorted(port.get_names() & graph_names)
        name = own[0] if own else port.any_name
        datatype = _OV_TYPES.get(port.get_element_type().get_type_name())
        if datatype is None:
            raise UsageError(
                f"model tensor {port.any_name!r} has type "
                f"{port.get_element_type()}, which this server does not serve"
            )
        shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
        return TensorSpec(name, datatype, _dims(shape))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # share_outputs=False: results must outlive the next call on this request.
        results = self._request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return {spec.name: np.asarray(results[i]) for i, spec in enumerate(self.outputs)}


def _graph_io_names(path: Path) -> tuple[set[str], set[str]]:
    if Path(path).suffix == ".xml":  # OpenVINO IR (`inferops model optimize --to openvino*`)
        import openvino as ov

        ir = ov.Core().read_model(str(path))
        return (
            {n for port in ir.inputs for n in port.get_names()},
            {n for port in ir.outputs for n in port.get_names()},
        )
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {i.name for i in graph.input}, {o.name for o in graph.output}


def load(
    path: Path, backend: str = "onnxruntime", threads: int | None = None, spinning: bool = False
):
    """Load ``path`` with the named backend; :class:`UsageError` for anything unloadable.

    ``spinning``: let ONNX Runtime's idle intra-op threads spin (lower latency on cores
    nothing else needs; off by default)."""
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(path, threads, spinning=spinning)
    if backend == "openvino":
        return OpenVinoBackend(path, threads)
    raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _first_line(exc: BaseException) -> str:
    # OpenVINO prefixes its message with "Exception from <file>:<line>:" lines; skip those.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from ")]
    return ((useful or lines or [type(exc).__name__])[0])[:200]
