"""``inferops model optimize``: turn an FP32 ONNX model into an INT8 or OpenVINO profile.

Profiles (``--to``):

* ``int8-dynamic``: ONNX Runtime ``quantize_dynamic`` after ``quant_pre_process``.
  Weights are INT8, activations are quantised per call. ``Gemm`` nodes are first
  rewritten as ``MatMul`` + ``Add`` (ORT's dynamic quantiser skips ``Gemm``; its
  graph optimiser fuses the pair back into ``DynamicQuantizeMatMul``).
* ``int8-static``: ``quant_pre_process``, then ``quantize_static`` in QDQ format
  with activation ranges from calibration samples (MinMax, Entropy or
  Percentile). Activation type and ``reduce_range`` follow the CPU's flags
  (:mod:`inferops.models.cpuflags`); weights go per-channel when their
  per-channel ranges differ enough that one scale would waste precision.
* ``openvino``: OpenVINO IR (``.xml`` + ``.bin``), FP32 weights.
* ``openvino-int8``: NNCF post-training quantisation of the IR.
* ``tensorrt``: needs an NVIDIA GPU with TensorRT; refused elsewhere.

Every output gets a sidecar ``<out stem>.profile.json`` saying how it was made:
source sha256, tool versions, the calibration set's hash, the CPU's flags and
every option. The model is written atomically and the sidecar last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from inferops.exitcodes import UsageError
from inferops.models import EMBEDDED, cpuflags, graphops, resolve, samples, write_atomic

PROFILES: tuple[str, ...] = ("int8-dynamic", "int8-static", "openvino", "openvino-int8", "tensorrt")
CALIBRATION_METHODS: tuple[str, ...] = ("MinMax", "Entropy", "Percentile")
#: Generated calibration samples for the embedded models.
DEFAULT_CALIBRATION_SAMPLES = 128
#: Weights go per-channel when the widest channel range is this many times the median one.
PER_CHANNEL_SPREAD = 2.0


def suffix_for(profile: str) -> str:
    return ".xml" if profile.startswith("openvino") else ".onnx"


def sidecar_path(out: Path) -> Path:
    return out.with_name(out.stem + ".profile.json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def optimize(
    model: str,
    profile: str,
    out: Path | None = None,
    *,
    calibration: Path | None = None,
    calibration_method: str | None = None,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    per_channel: str = "auto",
    activation_type: str = "auto",
    op_types: list[str] | None = None,
    cpu: cpuflags.CpuInfo | None = None,
) -> dict:
    """Build ``profile`` of ``model`` (a path or an embedded name) at ``out``; return the sidecar record.

    Every bad input (unknown profile, unloadable model, calibration file of the
    wrong shape, wrong output suffix) raises :class:`UsageError` before anything
    is written.
    """
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if profile == "tensorrt":
        _refuse_tensorrt()
    if per_channel not in ("auto", "on", "off"):
        raise UsageError(f"--per-channel must be auto, on or off, got {per_channel!r}")
    if per_channel != "auto" and profile != "int8-static":
        raise UsageError(f"--per-channel applies to int8-static only, not {profile}")
    if op_types and not profile.startswith("int8-"):
        raise UsageError(f"--op-types applies to int8-dynamic and int8-static, not {profile}")
    if activation_type not in ("auto", "uint8", "int8"):
        raise UsageError(f"--activation-type must be auto, uint8 or int8, got {activation_type!r}")
    if activation_type != "auto" and profile != "int8-static":
        raise UsageError(f"--activation-type applies to int8-static only, not {profile}")
    _check_calibration_flags(profile, calibration, calibration_method)
    source = resolve(model)
    embedded = model in EMBEDDED and not Path(model).is_file()
    onnx_model = _load_onnx(source)
    out = _output_path(out, source, profile)
    cpu = cpu or cpuflags.read_cpu()
    plan = cpuflags.int8_plan(cpu)
    if activation_type not in ("auto", plan.activation_type):
        plan = dataclasses.replace(
            plan,
            activation_type=activation_type,
            reason=f"{plan.reason}; activations overridden to {activation_type} (--activation-type)",
        )
    record = {
        "profile": profile,
        "source": {
            "path": str(source),
            "embedded": model if embedded else None,
            "sha256": sha256_file(source),
            "bytes": source.stat().st_size,
        },
        "tools": tool_versions(profile),
        "cpu": cpu.as_record(),
        "options": {},
        "calibration": None,
        "notes": [],
    }
    feeds = None
    if profile in ("int8-static", "openvino-int8"):
        feeds, record["calibration"] = _calibration_set(
            source, calibration, calibration_samples, embedded, calibration_method, profile
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        workspace = tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    with workspace as tmp:
        work = Path(tmp)
        built = work / out.name
        if profile == "int8-dynamic":
            _int8_dynamic(source, built, work, plan, op_types, record)
        elif profile == "int8-static":
            _int8_static(
                source, onnx_model, built, work, plan, feeds, per_channel, op_types, record
            )
        elif profile == "openvino":
            _openvino(source, built, record)
        else:
            _openvino_int8(source, built, feeds, record)
        # A stale sidecar must never describe the new files; it is rewritten last.
        sidecar_path(out).unlink(missing_ok=True)
        _publish(built, out)
    record["output"] = {
        "path": str(out),
        "files": {p.name: sha256_file(p) for p in _artefacts(out)},
        "bytes": sum(p.stat().st_size for p in _artefacts(out)),
    }
    record["size_ratio"] = round(record["output"]["bytes"] / record["source"]["bytes"], 4)
    record["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sidecar = sidecar_path(out)
    write_atomic((json.dumps(record, indent=2) + "\n").encode(), sidecar)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(sidecar, 0o644 & ~umask)  # mkstemp made it 0600; it is as public as the model
    record["sidecar"] = str(sidecar)
    return record


# -- checks ---------------------------------------------------------------------------------


def _refuse_tensorrt() -> None:
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise UsageError(
            "--to tensorrt needs an NVIDIA GPU with TensorRT; this machine has none "
            "(no TensorrtExecutionProvider in onnxruntime)"
        )
    raise UsageError("--to tensorrt is not implemented yet; build the engine with trtexec")


def _check_calibration_flags(profile: str, calibration, method) -> None:
    if profile not in ("int8-static", "openvino-int8") and calibration is not None:
        raise UsageError(f"--calibration applies to int8-static and openvino-int8, not {profile}")
    if method is None:
        return
    if profile != "int8-static":
        raise UsageError(
            f"--calibration-method applies to int8-static only ({profile} chooses its own ranges)"
        )
    if method not in CALIBRATION_METHODS:
        raise UsageError(
            f"unknown calibration method {method!r}; choose {', '.join(CALIBRATION_METHODS)}"
        )


def _load_onnx(source: Path):
    import onnx

    try:
        model = onnx.load(str(source))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ...
        raise UsageError(
            f"model {source}: not a valid ONNX model ({samples.first_line(exc)})"
        ) from None
    if not model.graph.node:
        raise UsageError(f"model {source}: the graph has no nodes")
    return model


def _output_path(out: Path | None, source: Path, profile: str) -> Path:
    suffix = suffix_for(profile)
    if out is None:
        out = Path(f"{source.stem}-{profile}{suffix}")
    elif out.is_dir() or not out.suffix:  # an existing folder, or one to create
        out = out / f"{source.stem}-{profile}{suffix}"
    if out.suffix != suffix:
        raise UsageError(f"--out {out}: a {profile} profile is written as a {suffix} file")
    if out.resolve() == source.resolve():
        raise UsageError(f"--out {out}: would overwrite the source model")
    return out


def _calibration_set(source, calibration, count, embedded, method, profile):
    specs = samples.input_specs(source)
    if calibration is not None:
        feeds = samples.read(Path(calibration), specs, "calibration")
        origin = {"source": str(calibration)}
    elif embedded:
        feeds = samples.generate(specs, count, samples.CALIBRATION_SEED)
        origin = {
            "source": "generated",
            "distribution": "uniform(-1, 1)",
            "seed": samples.CALIBRATION_SEED,
        }
    else:
        raise UsageError(
            f"--to {profile} needs --calibration FILE (.npy/.npz/.jsonl) with representative "
            "inputs; only the embedded models have generated ones"
        )
    record = {
        **origin,
        "samples": samples.count(feeds),
        "sha256": samples.digest(feeds),
        "method": (method or "MinMax") if profile == "int8-static" else "nncf default",
    }
    return feeds, record


# -- builders -------------------------------------------------------------------------------


def _int8_dynamic(source, built, work, plan, op_types, record) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pre = _pre_process(source, work)
    model = onnx.load(str(pre))
    rewritten = graphops.gemm_to_matmul(model)
    onnx.save(model, str(work / "rewritten.onnx"))
    try:
        with _quiet_quantizer():
            quantize_dynamic(
                str(work / "rewritten.onnx"),
                str(built),
                op_types_to_quantize=op_types,
                per_channel=False,
                reduce_range=plan.reduce_range,
                weight_type=QuantType.QInt8,
            )
    except Exception as exc:
        raise UsageError(f"dynamic quantisation failed ({samples.first_line(exc)})") from None
    quantized = graphops.count_quantized(built)
    if not quantized:
        raise UsageError(
            f"model {source}: no operator int8-dynamic can quantise (it handles MatMul, Gemm, "
            "Conv, Attention, LSTM, Gather)"
        )
    record["options"] = {
        "format": "QOperator (dynamic)",
        "activation_type": "uint8 (dynamic, per call)",
        "weight_type": "int8",
        "per_channel": False,
        "reduce_range": plan.reduce_range,
        "op_types": op_types or "onnxruntime default",
        "gemm_rewritten_as_matmul": rewritten,
        "int8_plan": plan.as_record(),
    }
    record["quantized_nodes"] = quantized
    if quantized.get("ConvInteger"):
        record["notes"].append(
            "Conv became ConvInteger, which ONNX Runtime runs slowly on CPU "
            "(onnxruntime#16009); prefer int8-static for convolutional models"
        )


def _int8_static(source, onnx_model, built, work, plan, feeds, per_channel, op_types, record):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    spread = graphops.weight_channel_spread(onnx_model)
    use_per_channel = {"on": True, "off": False}.get(per_channel, spread > PER_CHANNEL_SPREAD)
    pre = _pre_process(source, work)
    method = record["calibration"]["method"]
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    try:
        with _quiet_quantizer():
            quantize_static(
                str(pre),
                str(built),
                _FeedReader(feeds),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=use_per_channel,
                reduce_range=plan.reduce_range,
                activation_type=types[plan.activation_type],
                weight_type=types[plan.weight_type],
                calibrate_method=getattr(CalibrationMethod, method),
            )
    except Exception as exc:
        raise UsageError(f"static quantisation failed ({samples.first_line(exc)})") from None
    quantized = graphops.count_quantized(built)
    if not quantized:
        raise UsageError(f"model {source}: no operator int8-static can quantise")
    record["options"] = {
        "format": "QDQ",
        "activation_type": plan.activation_type,
        "weight_type": plan.weight_type,
        "reduce_range": plan.reduce_range,
        "per_channel": use_per_channel,
        "per_channel_choice": per_channel,
        "weight_channel_spread": round(spread, 3),
        "op_types": op_types or "onnxruntime default",
        "int8_plan": plan.as_record(),
    }
    record["quantized_nodes"] = quantized


def _openvino(source, built, record) -> None:
    import openvino as ov

    try:
        model = ov.convert_model(str(source))
    except Exception as exc:
        raise UsageError(f"OpenVINO cannot convert {source} ({samples.first_line(exc)})") from None
    # FP32 weights: the profile is "OpenVINO at FP32"; fp16 compression would mix two changes.
    ov.save_model(model, str(built), compress_to_fp16=False)
    record["options"] = {"weights": "f32", "compress_to_fp16": False}


def _openvino_int8(source, built, feeds, record) -> None:
    try:
        import nncf
    except ImportError:
        raise UsageError(
            "--to openvino-int8 needs NNCF, which is not installed (pip install nncf)"
        ) from None
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    try:
        model = ov.convert_model(str(source))
        dataset = nncf.Dataset(list(samples.batches(feeds, 1)))
        quantized = nncf.quantize(
            model,
            dataset,
            subset_size=samples.count(feeds),
            preset=nncf.QuantizationPreset.PERFORMANCE,
        )
    except Exception as exc:
        raise UsageError(f"NNCF quantisation failed ({samples.first_line(exc)})") from None
    ov.save_model(quantized, str(built), compress_to_fp16=False)
    fq = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
    record["options"] = {
        "preset": "performance (symmetric)",
        "subset_size": samples.count(feeds),
        "fast_bias_correction": True,
        "fake_quantize_nodes": fq,
    }


# -- helpers --------------------------------------------------------------------------------


def _pre_process(source: Path, work: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = work / "preprocessed.onnx"
    try:
        quant_pre_process(str(source), str(pre))
    except Exception as exc:
        raise UsageError(
            f"quantisation pre-processing failed ({samples.first_line(exc)})"
        ) from None
    return pre


@contextlib.contextmanager
def _quiet_quantizer():
    """ORT's quantiser logs advice through the root logger at WARNING; the sidecar records choices."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _FeedReader:
    """onnxruntime.quantization.CalibrationDataReader over a sample set, one sample per call."""

    def __init__(self, feeds: dict[str, np.ndarray]):
        self._feeds = iter(list(samples.batches(feeds, 1)))

    def get_next(self):
        return next(self._feeds, None)


def _artefacts(out: Path) -> list[Path]:
    files = [out]
    if out.suffix == ".xml":
        files.append(out.with_suffix(".bin"))
    return files


def _publish(built: Path, out: Path) -> None:
    """Move the built files into place; an IR's ``.bin`` goes first, its ``.xml`` last."""
    if built.suffix == ".xml":
        os.replace(built.with_suffix(".bin"), out.with_suffix(".bin"))
    os.replace(built, out)


def tool_versions(profile: str) -> dict:
    import onnx
    import onnxruntime

    from inferops import __version__

    versions = {
        "inferops": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    if profile.startswith("openvino"):
        import openvino

        versions["openvino"] = openvino.__version__
    if profile == "openvino-int8":
        try:
            import nncf

            versions["nncf"] = nncf.__version__
        except ImportError:
            pass
    return versions
