"""Engines: provider selection, ORT/OpenVINO agreement, fp32 on OpenVINO, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from inferops.exitcodes import UsageError
from inferops.server import backends


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ([], ["CPUExecutionProvider"]),
    ],
)
def test_provider_selection_prefers_tensorrt_then_cuda_then_cpu(available, expected):
    assert backends.select_providers(available) == expected


@pytest.mark.parametrize(("name", "shape"), [("mlp", (64,)), ("cnn", (3, 64, 64))])
def test_onnxruntime_and_openvino_agree(name, shape, model_dir):
    ort_backend = backends.load(model_dir / f"{name}.onnx", "onnxruntime", threads=1)
    ov_backend = backends.load(model_dir / f"{name}.onnx", "openvino", threads=1)
    assert ort_backend.inputs == ov_backend.inputs
    assert ort_backend.outputs == ov_backend.outputs
    x = np.random.RandomState(7).uniform(-1, 1, (4, *shape)).astype(np.float32)
    a = ort_backend.run({"input": x})["logits"]
    b = ov_backend.run({"input": x})["logits"]
    assert a.shape == b.shape == (4, 10)
    assert np.abs(a).max() > 0.01  # the comparison is not between two zero tensors
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_openvino_runs_in_fp32(model_dir):
    import openvino as ov

    ov_backend = backends.load(model_dir / "mlp.onnx", "openvino", threads=1)
    hint = ov_backend.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert hint == ov.Type.f32


@pytest.mark.parametrize("kind", backends.BACKENDS)
def test_corrupt_file_is_a_usage_error(kind, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf")
    with pytest.raises(UsageError, match="not a loadable ONNX model"):
        backends.load(bad, kind)
